"""Sequential models: what each object is allowed to do, one operation at a time.

Adding a model
--------------
A model is a small object with six methods; the search never looks inside states or
operations, it only asks the model:

- ``init()`` -> the initial state. States must be hashable and compare equal exactly when
  they mean the same thing (use ints, strings, tuples, frozensets; never lists or dicts).
- ``call(f, value, result)`` -> ``(inp, out)``: turn one operation of the history into a
  hashable input and output. ``value`` is the invocation's value, ``result`` the
  completion's value, or ``UNKNOWN`` (an ``info`` op, or one that never completed), or
  ``FAILED`` (a ``fail`` the checker keeps as an observation, see ``fail_cas``). Raise
  ``ValueError`` for an ``f`` or value the model does not know; the checker adds where.
- ``step(state, inp, out)`` -> ``(ok, new_state)``: may the operation happen in this
  state with this outcome, and what state follows. It must be a pure function.
- ``read_only(inp, out)`` -> True when the operation never changes the state, in any
  state where it is legal (a read; a CAS that failed on another value). The search uses
  it twice: such an op with an unknown outcome is legal everywhere (or, by convention,
  nowhere) and is left out; and once one is linearized, the search need not also try
  the orders that put it later (it can only have been harder there). Default: False,
  always safe, only slower.
- optionally ``observed_state(inp, out)``: for a read-only op legal in exactly one state
  (a read that returned a value), that state, so the search can compare instead of
  calling ``step``; ``NOT_EXACT`` otherwise (the default).
- optionally ``transition(inp, out)`` -> ``(need, then)``: the op's step written as
  data, so the search can apply it without calling ``step``: ``need`` is the one state
  it is legal in, ``ANY``, or ``AnyBut(state)`` (legal in every other state); ``then``
  the state after it, or ``SAME``; ``(STEP, None)``
  when it is neither (ask ``step``; the default, or what ``observed_state`` gives). An op
  of unknown outcome may name as illegal the states in which it would change nothing
  (the search never takes such a step anyway). A subclass that overrides ``step`` and
  not ``transition`` is asked ``step`` every time.
- ``describe(state)`` -> a phrase for explanations ("the register holds 2").
- ``describe_op(inp, out)`` -> a short phrase for an operation ("cas 1->3").

Subclass ``Model`` for the defaults, then register a factory in ``MODELS``; a factory
takes ``initial`` and ``nil_read`` keyword arguments. A model whose objects are
independent per key (like ``kv``) sets ``key_field`` to the op field that names the key,
and the checker checks each key's sub-history on its own (P-compositionality). A toy
counter that can only be incremented and read, complete::

    class Counter(Model):
        name = "counter"
        def init(self): return 0
        def call(self, f, value, result):
            return (f, value), (None if result in (UNKNOWN, FAILED) else result)
        def step(self, state, inp, out):
            if inp[0] == "add": return True, state + inp[1]
            return out is None or out == state, state
        def read_only(self, inp, out): return inp[0] == "read"

    MODELS["counter"] = lambda initial=None, nil_read="unknown": Counter()

Reads of nil
------------
``nil_read="unknown"`` (Knossos's convention, the default): a read that returned nil
tells nothing and is always legal. ``nil_read="absent"`` (Porcupine's etcd data): nil
means "never written", legal only while the object still holds its initial None.
"""
from __future__ import annotations

from typing import Any, Callable


class _Outcome:
    """A marker outcome that survives pickling as the same object (worker processes)."""
    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def __reduce__(self):
        return self._name

    def __repr__(self):
        return self._name


UNKNOWN = _Outcome("UNKNOWN")  # the op may or may not have happened; its result is unknown
FAILED = _Outcome("FAILED")    # a fail kept as an observation (a CAS that saw another value)
NOT_EXACT = _Outcome("NOT_EXACT")  # see Model.observed_state
STEP = _Outcome("STEP")  # see Model.transition: ask step
ANY = _Outcome("ANY")    # Model.transition: legal in every state
SAME = _Outcome("SAME")  # Model.transition: the state does not change


class AnyBut:
    """Model.transition's `need` of an op legal in every state but one (a CAS that failed
    on another value). Compared with a state it says whether the op is legal there, so the
    search tests it exactly as it tests a single needed state (`need == state`), without
    a branch of its own or a call to `step`."""
    __slots__ = ("state",)

    def __init__(self, state):
        self.state = state

    def __eq__(self, state):
        return not state == self.state   # exactly the negation of the test step makes

    __hash__ = None

    def __reduce__(self):
        return AnyBut, (self.state,)

    def __repr__(self):
        return f"AnyBut({self.state!r})"


NIL_READS = ("unknown", "absent")


def freeze(x: Any) -> Any:
    """A hashable version of a JSON/EDN value: lists become tuples, dicts sorted pairs,
    EDN keywords plain strings (so :x and "x" are one key)."""
    if isinstance(x, str):
        return x if type(x) is str else str.__str__(x)
    if isinstance(x, list):
        return tuple(freeze(v) for v in x)
    if isinstance(x, dict):
        return tuple(sorted(((freeze(k), freeze(v)) for k, v in x.items()), key=repr))
    if isinstance(x, set):
        return frozenset(freeze(v) for v in x)
    return x


def show(x: Any) -> str:
    """A value as users of Jepsen write it: nil, [1 2], {x 0}."""
    if x is None:
        return "nil"
    if isinstance(x, (list, tuple)):
        return "[" + " ".join(show(v) for v in x) + "]"
    if isinstance(x, (set, frozenset)):
        return "#{" + " ".join(sorted(show(v) for v in x)) + "}"
    if isinstance(x, str):
        return str.__str__(x)
    return repr(x)


class Model:
    """Defaults for the optional parts of a model (see the module docstring)."""
    name = "model"
    key_field: str | None = None

    def init(self):
        raise NotImplementedError

    def call(self, f: str, value: Any, result: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def step(self, state, inp, out) -> tuple[bool, Any]:
        raise NotImplementedError

    def read_only(self, inp, out) -> bool:
        return False

    def observed_state(self, inp, out) -> Any:
        return NOT_EXACT

    def transition(self, inp, out) -> tuple[Any, Any]:
        state = self.observed_state(inp, out)
        return (STEP, None) if state is NOT_EXACT else (state, SAME)

    def describe(self, state) -> str:
        return f"the state is {show(state)}"

    def describe_op(self, inp, out) -> str:
        text = " ".join(show(x) for x in inp)
        return text if out is UNKNOWN or out is None else f"{text} -> {show(out)}"

    def _unknown_f(self, f: str, known: str):
        raise ValueError(f"model {self.name} has no operation {f!r} (it knows {known})")


def _check_nil_read(nil_read: str) -> str:
    if nil_read not in NIL_READS:
        raise ValueError(f"nil_read must be one of {', '.join(NIL_READS)}, got {nil_read!r}")
    return nil_read


class Register(Model):
    """A single register: read, write and (for cas-register) compare-and-set [from to].

    A successful CAS needs state == from. A CAS kept as FAILED observed a different value:
    legal only where state != from, and it changes nothing. A CAS of unknown outcome
    applies if state == from and otherwise leaves the register alone; both are legal.
    """

    def __init__(self, initial=None, nil_read="unknown", cas=True):
        self.initial = freeze(initial)
        self.absent = _check_nil_read(nil_read) == "absent"
        self.cas = cas
        self.name = "cas-register" if cas else "register"

    def init(self):
        return self.initial

    def call(self, f, value, result):
        if f == "read":
            if result is UNKNOWN or result is FAILED or (result is None and not self.absent):
                return ("read",), UNKNOWN
            return ("read",), freeze(result)
        if f == "write":
            return ("write", freeze(value)), None
        if f == "cas" and self.cas:
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise ValueError(f"cas needs a value [from to], got {show(value)}")
            out = result if result is UNKNOWN or result is FAILED else None
            return ("cas", freeze(value[0]), freeze(value[1])), out
        self._unknown_f(f, "read, write, cas" if self.cas else "read, write")

    def step(self, state, inp, out):
        f = inp[0]
        if f == "read":
            return (out is UNKNOWN or out == state), state
        if f == "write":
            return True, inp[1]
        if state == inp[1]:
            return out is not FAILED, inp[2]
        return out is not None, state

    def read_only(self, inp, out):
        return inp[0] == "read" or out is FAILED

    def observed_state(self, inp, out):
        return out if inp[0] == "read" and out is not UNKNOWN else NOT_EXACT

    def transition(self, inp, out):
        f = inp[0]
        if f == "read":
            return (STEP, None) if out is UNKNOWN else (out, SAME)
        if f == "write":
            return ANY, inp[1]
        if out is FAILED:
            return AnyBut(inp[1]), SAME
        # ok, or unknown: then the states other than `from` are those it leaves alone
        return inp[1], inp[2]

    def describe(self, state):
        if state is None and self.absent:
            return "the register is absent (never written)"
        return f"the register holds {show(state)}"

    def describe_op(self, inp, out):
        f = inp[0]
        if f == "read":
            return "read ?" if out is UNKNOWN else f"read {show(out)}"
        if f == "write":
            return f"write {show(inp[1])}"
        text = f"cas {show(inp[1])}->{show(inp[2])}"
        return text + (" (failed: saw another value)" if out is FAILED else "")


class StringKV(Model):
    """One key of Porcupine's key-value store: get, put, append on a string that starts
    as "". The checker splits the history on the ops' `key` field first."""
    name = "kv"
    key_field = "key"

    def __init__(self, initial=None, nil_read="unknown"):
        self.initial = "" if initial is None else str(initial)
        _check_nil_read(nil_read)

    def init(self):
        return self.initial

    def call(self, f, value, result):
        if f == "get":
            if result is UNKNOWN or result is FAILED or result is None:
                return ("get",), UNKNOWN
            return ("get",), str(result)
        if f in ("put", "append"):
            return (str(f), "" if value is None else str(value)), None
        self._unknown_f(f, "get, put, append")

    def step(self, state, inp, out):
        f = inp[0]
        if f == "get":
            return (out is UNKNOWN or out == state), state
        if f == "put":
            return True, inp[1]
        return True, state + inp[1]

    def read_only(self, inp, out):
        return inp[0] == "get"

    def observed_state(self, inp, out):
        return out if inp[0] == "get" and out is not UNKNOWN else NOT_EXACT

    def transition(self, inp, out):
        if inp[0] == "put":
            return ANY, inp[1]
        return super().transition(inp, out)

    def describe(self, state):
        return f"the key holds {state!r}"

    def describe_op(self, inp, out):
        if inp[0] == "get":
            return "get ?" if out is UNKNOWN else f"get {out!r}"
        return f"{inp[0]} {inp[1]!r}"


class MultiRegister(Model):
    """Knossos's multi-register: `txn` ops whose value is a list of [read k v] and
    [write k v] micro-ops on a map of registers (Knossos starts it at {x 0, y 0})."""
    name = "multi-register"

    _READ = {"read": "r", "r": "r"}
    _WRITE = {"write": "w", "w": "w"}

    def __init__(self, initial=None, nil_read="unknown"):
        if initial is not None and not isinstance(initial, dict):
            raise ValueError(f"multi-register needs a map as its initial value, got {show(initial)}")
        self.initial = tuple(sorted(((freeze(k), freeze(v)) for k, v in (initial or {}).items()), key=repr))
        self.absent = _check_nil_read(nil_read) == "absent"

    def init(self):
        return self.initial

    def call(self, f, value, result):
        if f != "txn":
            self._unknown_f(f, "txn")
        known = isinstance(result, list)
        mops = result if known else value
        if not isinstance(mops, list):
            raise ValueError(f"txn needs a list of micro-ops, got {show(mops)}")
        out = []
        for m in mops:
            if not isinstance(m, (list, tuple)) or len(m) != 3:
                raise ValueError(f"txn micro-op must be [f k v], got {show(m)}")
            mf, k, v = m
            k = freeze(k)
            if mf in self._READ:
                if not known or (v is None and not self.absent):
                    out.append(("r", k, UNKNOWN))
                else:
                    out.append(("r", k, freeze(v)))
            elif mf in self._WRITE:
                out.append(("w", k, freeze(v)))
            else:
                raise ValueError(f"txn micro-op must be read or write, got {show(mf)}")
        return ("txn", tuple(out)), (None if known else UNKNOWN)

    def step(self, state, inp, out):
        regs = dict(state)
        for mf, k, v in inp[1]:
            if mf == "r":
                if v is not UNKNOWN and regs.get(k) != v:
                    return False, state
            else:
                regs[k] = v
        return True, tuple(sorted(regs.items(), key=repr))

    def read_only(self, inp, out):
        return all(m[0] == "r" for m in inp[1])

    def describe(self, state):
        return "the registers hold {" + ", ".join(f"{show(k)} {show(v)}" for k, v in state) + "}"

    def describe_op(self, inp, out):
        parts = []
        for mf, k, v in inp[1]:
            shown = "?" if v is UNKNOWN else show(v)
            parts.append(f"[{'read' if mf == 'r' else 'write'} {show(k)} {shown}]")
        return "txn " + " ".join(parts)


class SetModel(Model):
    """A grow-only set: add v, and read of the whole set (a list of its elements)."""
    name = "set"

    def __init__(self, initial=None, nil_read="unknown"):
        self.initial = frozenset(freeze(v) for v in (initial or ()))
        _check_nil_read(nil_read)

    def init(self):
        return self.initial

    def call(self, f, value, result):
        if f == "add":
            return ("add", freeze(value)), None
        if f == "read":
            if result is UNKNOWN or result is FAILED or result is None:
                return ("read",), UNKNOWN
            return ("read",), frozenset(freeze(v) for v in result)
        self._unknown_f(f, "add, read")

    def step(self, state, inp, out):
        if inp[0] == "add":
            return True, state | {inp[1]}
        return (out is UNKNOWN or out == state), state

    def read_only(self, inp, out):
        return inp[0] == "read"

    def observed_state(self, inp, out):
        return out if inp[0] == "read" and out is not UNKNOWN else NOT_EXACT

    def describe(self, state):
        return f"the set is {show(state)}"

    def describe_op(self, inp, out):
        if inp[0] == "add":
            return f"add {show(inp[1])}"
        return "read ?" if out is UNKNOWN else f"read {show(out)}"


class Mutex(Model):
    """A lock without owners (Knossos's mutex): acquire needs it free, release held."""
    name = "mutex"

    def __init__(self, initial=None, nil_read="unknown"):
        self.initial = bool(initial)
        _check_nil_read(nil_read)

    def init(self):
        return self.initial

    def call(self, f, value, result):
        if f in ("acquire", "release"):
            return (str(f),), (UNKNOWN if result is UNKNOWN else None)
        self._unknown_f(f, "acquire, release")

    def step(self, state, inp, out):
        if inp[0] == "acquire":
            return (not state), True
        return state, False

    def describe(self, state):
        return "the lock is held" if state else "the lock is free"

    def describe_op(self, inp, out):
        return inp[0]


def _multiset_add(state: tuple, v) -> tuple:
    return tuple(sorted(state + (v,), key=repr))


def _multiset_remove(state: tuple, v) -> tuple:
    i = state.index(v)
    return state[:i] + state[i + 1:]


class UnorderedQueue(Model):
    """A queue that may hand out its elements in any order (a multiset).

    A dequeue that completed with nil found the queue empty. A dequeue of unknown outcome
    is left out, as Knossos does (it can never be linearized there): it could only have
    removed an element, which no later operation needs, except a later nil dequeue."""
    name = "unordered-queue"

    def __init__(self, initial=None, nil_read="unknown"):
        self.initial = tuple(sorted((freeze(v) for v in (initial or ())), key=repr))
        _check_nil_read(nil_read)

    def init(self):
        return self.initial

    def call(self, f, value, result):
        if f == "enqueue":
            return ("enqueue", freeze(value)), None
        if f == "dequeue":
            if result is UNKNOWN or result is FAILED:
                return ("dequeue",), UNKNOWN
            return ("dequeue",), freeze(result)
        self._unknown_f(f, "enqueue, dequeue")

    def step(self, state, inp, out):
        if inp[0] == "enqueue":
            return True, _multiset_add(state, inp[1])
        if out is None:
            return not state, state
        if out in state:
            return True, _multiset_remove(state, out)
        return False, state

    def read_only(self, inp, out):
        # A dequeue of unknown outcome is legal nowhere here, so it changes nothing.
        return inp[0] == "dequeue" and out is UNKNOWN

    def describe(self, state):
        return f"the queue holds {show(state)} (in any order)"

    def describe_op(self, inp, out):
        if inp[0] == "enqueue":
            return f"enqueue {show(inp[1])}"
        return "dequeue ?" if out is UNKNOWN else f"dequeue {show(out)}"


class FifoQueue(UnorderedQueue):
    """A first-in first-out queue. A dequeue of unknown outcome took the head, if any."""
    name = "fifo-queue"

    def __init__(self, initial=None, nil_read="unknown"):
        self.initial = tuple(freeze(v) for v in (initial or ()))
        _check_nil_read(nil_read)

    def step(self, state, inp, out):
        if inp[0] == "enqueue":
            return True, state + (inp[1],)
        if out is UNKNOWN:
            return True, state[1:]
        if out is None:
            return not state, state
        return (bool(state) and state[0] == out), state[1:]

    def read_only(self, inp, out):
        return out is None and inp[0] == "dequeue"

    def describe(self, state):
        return f"the queue holds {show(state)} (head first)"


MODELS: dict[str, Callable[..., Model]] = {
    "register": lambda initial=None, nil_read="unknown": Register(initial, nil_read, cas=False),
    "cas-register": lambda initial=None, nil_read="unknown": Register(initial, nil_read, cas=True),
    "kv": StringKV,
    "multi-register": MultiRegister,
    "set": SetModel,
    "mutex": Mutex,
    "unordered-queue": UnorderedQueue,
    "fifo-queue": FifoQueue,
}


MODEL_GROUP = "tectonic.models"


def make_model(name: str, initial=None, nil_read: str = "unknown") -> Model:
    """The model called `name`: one of MODELS, an installed package's entry point in the
    group `tectonic.models`, or a `module:factory` path; a factory takes `initial` and
    `nil_read` keyword arguments. A ValueError (one line) says what is missing."""
    factory = MODELS.get(name) or _plugged_in(name)
    model = factory(initial=initial, nil_read=nil_read)
    if not all(callable(getattr(model, m, None)) for m in ("init", "call", "step")):
        raise ValueError(f"model {name!r} made {model!r}, which is not a Model "
                         f"(subclass checkers.linearizable.models.Model)")
    return model


def model_names() -> list[str]:
    """Every model name `make_model` takes without a module:factory path."""
    from importlib.metadata import entry_points
    return sorted({*MODELS, *(ep.name for ep in entry_points(group=MODEL_GROUP))})


def _plugged_in(name: str) -> Callable[..., Model]:
    import importlib
    from importlib.metadata import entry_points
    path = next((ep.value for ep in entry_points(group=MODEL_GROUP, name=name)), None)
    if path is None and ":" in name:
        path = name
    if path is None:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(model_names())} "
                         f"(or give module:factory)")
    module_name, _, attr = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(f"model {name!r} ({path}): {type(e).__name__}: {e}") from None
    if not callable(factory):
        raise ValueError(f"model {name!r} ({path}) is not a factory of models")
    return factory
