"""From a history (op dicts) to the calls the search linearizes, split by key.

A call is one invocation with what we know of its outcome. Real-time order comes from
positions in the history, not from `time` (clocks of foreign tools may disagree with the
order they logged in; Knossos and Porcupine also go by position). What is dropped, and why
that cannot change the verdict:

- `fail` ops never happened (except a `fail` CAS kept as an observation, `fail_cas`);
- nemesis ops and lone `info` completions are not operations on the object;
- an op of unknown outcome that the model says is a no-op whatever happened (a read that
  timed out) is legal in every state and changes nothing.

An `info` op, or an invocation never completed, may take effect at any point after its
invocation, or never: it has no completion position (`ret is None`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any

from core.history import NEMESIS, NO_PARTNER, TYPES, HistoryError, pair

from .models import FAILED, STEP, UNKNOWN, Model

try:
    from . import _prepare   # compiled by setup.sh; absent where it could not be built
except ImportError:
    _prepare = None

FAIL_CAS = ("ignored", "observed")
SINGLE_KEY = "all"  # the key name of a history that is not split by key
NEMESIS_SLOT = -2
_PLAIN = frozenset({int, str, type(None), bool, float, type(UNKNOWN)})


class Call(tuple):
    """One operation as the search sees it, with what explanations need to name it.

    inp, out: the model's; inv: position of the invocation in the history (NO_PARTNER
    for a lone completion); ret: position of the completion if the op must linearize
    before it; end: position of the completion record, whatever its type; value: the
    value to show (the completion's if known, else the invocation's); kind: ok, info
    (outcome unknown), open (never completed), fail (observed). For the search, what the
    model says of (inp, out), asked once per distinct op: `pure` (read_only) and `need`,
    `then` (Model.transition). `at`: where the op's slot is, its invocation's position
    (a lone completion's own): calls are kept in that order. Only explanations read
    `index` (the op's, the completion's when it has one), `invoke_index` and `t0`/`t1`
    (`time` of invocation and completion), so those are looked up in the history when
    asked for, not for every op.

    A tuple (building one is a quarter of the cost of setting ten slots of an object,
    and a short history's preparation is mostly that), compared and hashed by identity
    as an object would be."""
    __slots__ = ()
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__

    inp = property(itemgetter(0))
    out = property(itemgetter(1))
    inv = property(itemgetter(2))
    ret = property(itemgetter(3))
    end = property(itemgetter(4))
    process = property(itemgetter(5))
    f = property(itemgetter(6))
    value = property(itemgetter(7))
    kind = property(itemgetter(8))
    _history = property(itemgetter(9))
    pure = property(itemgetter(10))
    need = property(itemgetter(11))
    then = property(itemgetter(12))
    at = property(itemgetter(13))

    @property
    def index(self):
        if self.end is not None:
            return self._history[self.end].get("index", self.end)
        return self._history[self.inv].get("index", self.inv)

    @property
    def invoke_index(self):
        return None if self.inv == NO_PARTNER else self._history[self.inv].get("index", self.inv)

    @property
    def t0(self):
        return None if self.inv == NO_PARTNER else self._history[self.inv].get("time")

    @property
    def t1(self):
        return None if self.end is None else self._history[self.end].get("time")

    def __repr__(self):
        return (f"Call(inp={self.inp!r}, out={self.out!r}, inv={self.inv}, ret={self.ret}, end={self.end}, "
                f"process={self.process!r}, f={self.f!r}, value={self.value!r}, kind={self.kind!r})")


_new_call = tuple.__new__
AT = itemgetter(13)


@dataclass
class Prepared:
    # per key its calls in invocation order: a list of Call, or from the C loop a
    # _prepare.Calls, a sequence of the same Calls made when first read (_calls.h)
    keys: dict[str, list[Call]] = field(default_factory=dict)
    dropped_fail: int = 0
    skipped_unknown: int = 0
    ignored: int = 0       # nemesis ops and lone info completions


def key_name(key: Any) -> str:
    """A key as a string for results and file names (JSON for anything not a str/int)."""
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    return json.dumps(key, sort_keys=True, default=str)


def prepare(history: list[dict], model: Model, *, independent: bool = False,
            fail_cas: str = "ignored") -> Prepared:
    """Pair invocations with completions (`core.history.pairing`: a completion without an
    invocation was invoked before everything) and build the calls of each key. Raises
    HistoryError (a ValueError) naming the op on a malformed history.

    The loop runs in C (`_prepare.c`, built by setup.sh) where it is built and the
    history is of the shapes it takes, else in Python (`prepare_op_by_op`, the
    reference, which also names what is wrong)."""
    if fail_cas not in FAIL_CAS:
        raise ValueError(f"fail_cas must be one of {', '.join(FAIL_CAS)}, got {fail_cas!r}")
    if _prepare is not None:
        done = _prepare.prepare(history, _asker(model), model.key_field, independent, fail_cas == "observed",
                                Call, key_name, UNKNOWN, FAILED, _PLAIN, SINGLE_KEY)
        if done is not None:
            keys, ignored, dropped_fail, skipped_unknown = done
            return Prepared(keys, dropped_fail, skipped_unknown, ignored)
    return prepare_op_by_op(history, model, independent=independent, fail_cas=fail_cas)


def prepare_op_by_op(history: list[dict], model: Model, *, independent: bool = False,
                     fail_cas: str = "ignored") -> Prepared:
    """`prepare` in Python, one op at a time: the reference `_prepare.c` is tested
    against, and the path that raises, naming the op."""
    if fail_cas not in FAIL_CAS:
        raise ValueError(f"fail_cas must be one of {', '.join(FAIL_CAS)}, got {fail_cas!r}")
    where = getattr(history, "where", None) or (lambda i: f"op {i}")
    prepared = Prepared()
    # One pass, pairing as core.history.pairing does, and each call built as its
    # completion comes (a pairing pass and then a pass over the pairs cost a third more
    # on short histories); the invocations still open at the end come last, as
    # completions of kind "open" (`_closing`). Anything pairing would reject sends us to
    # `pair`, which raises naming the op. Calls are then put back in slot order.
    open_at: dict = {}         # process -> position of its open invocation (or NEMESIS_SLOT)
    types = TYPES
    kinds = _KINDS
    ignored = dropped_fail = skipped_unknown = 0
    keys = prepared.keys
    names: dict = {}           # key -> its name, for the int and str ones
    key_field = model.key_field
    observe_failed_cas = fail_cas == "observed"
    ask = _asker(model)
    new, plain = _new_call, _PLAIN
    memo: dict = {}
    for i, op in chain(enumerate(history), _closing(open_at)):
        if type(op) is not dict and not isinstance(op, dict):
            _malformed(history)
        t = op.get("type")
        p = op.get("process")
        try:
            inv = open_at.pop(p, NO_PARTNER)
        except TypeError:
            _malformed(history)
        if t == "invoke":
            if inv != NO_PARTNER:
                _malformed(history)
            if p == NEMESIS:
                open_at[p] = NEMESIS_SLOT
                ignored += 1
            else:
                open_at[p] = i
            continue
        if inv >= 0:
            at = inv
            invoke = history[inv]
        elif t not in types:
            _malformed(history)
        elif inv == NEMESIS_SLOT or p == NEMESIS or t == "info":
            ignored += 1   # nemesis ops; a lone info: nothing known, neither what nor when
            continue
        else:  # invoked at some unknown time before: the widest interval
            at = i
            invoke = op
        try:   # one lookup checks the type and gives it as a plain str
            kind = kinds[t]
        except (KeyError, TypeError):
            _malformed(history)
        end = None if t is _OPEN else i
        f = invoke.get("f")
        if type(f) is not str:   # the exact type first: it is the common case
            if not isinstance(f, str):
                raise HistoryError(f"{where(at)}: op has no f (a string), got {f!r}")
            f = str.__str__(f)
        if kind == "fail" and not (observe_failed_cas and f == "cas"):
            dropped_fail += 1
            continue
        value = invoke.get("value")
        known = kind == "ok" or kind == "fail"
        result = op.get("value") if known else UNKNOWN
        key = SINGLE_KEY
        if key_field is not None and key_field in invoke:
            key = key_name(invoke[key_field])
        elif independent:
            if value.__class__ is not list or len(value) != 2:
                if not isinstance(value, (list, tuple)) or len(value) != 2:
                    _not_a_pair(value, where(at))
            key, value = value
            kt = type(key)
            if kt is int or kt is str:   # exactly: True == 1 and "x" == :x, yet names differ
                name = names.get(key)
                if name is None:
                    name = names[key] = key_name(key)
                key = name
            else:
                key = key_name(key)
            if known:
                if result.__class__ is not list or len(result) != 2:
                    if not isinstance(result, (list, tuple)) or len(result) != 2:
                        _not_a_pair(result, where(i))
                result = result[1]
        got = FAILED if kind == "fail" else result
        vt, gt = type(value), type(got)
        # Most ops repeat a few (f, value, outcome)s: the model's answers are remembered
        # for those of plain types, and pairs of them (a CAS's [from to]); the types are
        # part of the key, since 1 == True.
        if gt not in plain:
            memo_key = None
        elif vt in plain:
            memo_key = (f, vt, value, gt, got)
        elif vt is list and len(value) == 2 and type(value[0]) in plain and type(value[1]) in plain:
            memo_key = (f, value[0], type(value[0]), value[1], type(value[1]), gt, got)
        else:
            memo_key = None
        answer = memo.get(memo_key) if memo_key is not None else None
        if answer is None:
            try:
                answer = ask(f, value, got, known)
            except ValueError as e:
                raise HistoryError(f"{where(at)}: {e}") from None
            if memo_key is not None:
                memo[memo_key] = answer
        inp, out, skip, pure, need, then = answer
        if skip:
            skipped_unknown += 1
            continue
        call = new(Call, (inp, out, inv, end if known else None, end, invoke.get("process"), f,
                          result if kind == "ok" else value, kind, history, pure, need, then, at))
        calls = keys.get(key)
        if calls is None:
            keys[key] = [call]
        else:
            calls.append(call)
    for calls in keys.values():
        calls.sort(key=AT)   # nearly sorted already: timsort takes runs in one pass
    prepared.ignored, prepared.dropped_fail, prepared.skipped_unknown = ignored, dropped_fail, skipped_unknown
    return prepared


_OPEN = object()   # the type of `_closing`'s stand-in completions
_KINDS = {"ok": "ok", "fail": "fail", "info": "info", _OPEN: "open"}   # completion type -> kind


def _closing(open_at: dict):
    """After the history, a stand-in completion for each invocation still open (read
    only once the history is through: this is a generator)."""
    for p, inv in list(open_at.items()):
        if inv >= 0:   # not the nemesis's
            yield inv, {"type": _OPEN, "process": p}


def _asker(model):
    """ask(f, value, outcome, known): what the model says of one op, as the search takes
    it: (inp, out, skip: of unknown outcome and read-only, so left out, pure: read-only,
    need, then: Model.transition). Raises the model's ValueError."""
    model_call, read_only, transition = model.call, _read_only(model), _transition(model)

    def ask(f, value, got, known):
        inp, out = model_call(f, value, got)
        pure = bool(read_only(inp, out))
        # the search takes a call of unknown outcome as having any outcome
        return (inp, out, out is UNKNOWN and pure, pure, *transition(inp, out if known else UNKNOWN))
    return ask


def _read_only(model):
    return getattr(model, "read_only", None) or (lambda inp, out: False)


def _transition(model):
    """model.transition, unless a subclass overrode `step` below where `transition` was
    written (that transition would describe another step): then ask step every time."""
    mro = type(model).__mro__
    written = {name: next((c for c in mro if name in c.__dict__), None) for name in ("step", "transition")}
    step_by, transition_by = written["step"], written["transition"]
    if transition_by is None or (step_by is not transition_by and issubclass(step_by, transition_by)):
        return lambda inp, out: (STEP, None)
    return model.transition


def _malformed(history) -> None:
    """Raise pairing's own error for the first malformed op."""
    pair(history)
    raise HistoryError("malformed history")  # not reached: pair raises on what we reject


def _not_a_pair(value, at: str):
    raise HistoryError(f"{at}: with independent keys a value must be [key, value], got {value!r}")
