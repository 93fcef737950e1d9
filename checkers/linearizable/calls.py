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
from typing import Any

from core.history import NEMESIS, NO_PARTNER, TYPES, HistoryError, pair

from .models import FAILED, UNKNOWN, Model

FAIL_CAS = ("ignored", "observed")
SINGLE_KEY = "all"  # the key name of a history that is not split by key
NEMESIS_SLOT = -2


@dataclass(slots=True)
class Call:
    """One operation as the search sees it, with what explanations need to name it."""
    inp: Any
    out: Any
    inv: int               # position of the invocation in the history
    ret: int | None        # position of the completion if the op must linearize before it
    end: int | None        # position of the completion record, whatever its type
    process: Any
    f: str
    value: Any             # the value to show: the completion's if known, else the invocation's
    kind: str              # ok, info (outcome unknown), open (never completed), fail (observed)
    index: Any             # the op's `index` (the completion's when it has one)
    invoke_index: Any
    t0: Any = None         # `time` of invocation and completion, when the history has them
    t1: Any = None


@dataclass
class Prepared:
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
    HistoryError (a ValueError) naming the op on a malformed history."""
    if fail_cas not in FAIL_CAS:
        raise ValueError(f"fail_cas must be one of {', '.join(FAIL_CAS)}, got {fail_cas!r}")
    where = getattr(history, "where", None) or (lambda i: f"op {i}")
    prepared = Prepared()
    # One pass pairs each invocation with its completion, as core.history.pairing does
    # (a separate pairing pass and a second walk over the history cost a third of the
    # checker's time on short histories): invs[s], ends[s] are the positions of call
    # slot s, slots in the order of invocation (a lone completion: its own position).
    # Anything pairing would reject sends us to `pair`, which raises naming the op.
    invs: list[int] = []
    ends: list[int | None] = []
    open_slot: dict = {}      # process -> slot of its open call (NEMESIS_SLOT: nemesis)
    types = TYPES
    ignored = 0
    for i, op in enumerate(history):
        if type(op) is not dict and not isinstance(op, dict):
            _malformed(history)
        t = op.get("type")
        p = op.get("process")
        try:
            s = open_slot.pop(p, NO_PARTNER)
        except TypeError:
            _malformed(history)
        if t == "invoke":
            if s != NO_PARTNER:
                _malformed(history)
            if p == NEMESIS:
                open_slot[p] = NEMESIS_SLOT
                ignored += 1
            else:
                open_slot[p] = len(invs)
                invs.append(i)
                ends.append(None)
        elif t not in types:
            _malformed(history)
        elif s >= 0:
            ends[s] = i
        elif p == NEMESIS or t == "info":
            ignored += 1   # nemesis ops; a lone info: nothing known, neither what nor when
        else:
            invs.append(NO_PARTNER)  # invoked at some unknown time before: the widest interval
            ends.append(i)
    prepared.ignored = ignored

    keys = prepared.keys
    names: dict = {}          # key -> its name, for the hashable ones
    key_field = model.key_field
    observe_failed_cas = fail_cas == "observed"
    model_call, read_only = model.call, model.read_only
    for inv, end in zip(invs, ends):
        lone = inv == NO_PARTNER
        at = end if lone else inv  # where errors point
        invoke = history[at]       # a lone completion stands for its own invocation
        done = history[end] if end is not None else None
        kind = "open" if done is None else str.__str__(done["type"])
        f = invoke.get("f")
        if not isinstance(f, str):
            raise HistoryError(f"{where(at)}: op has no f (a string), got {f!r}")
        if type(f) is not str:
            f = str.__str__(f)
        if kind == "fail" and not (observe_failed_cas and f == "cas"):
            prepared.dropped_fail += 1
            continue
        value = invoke.get("value")
        known = kind == "ok" or kind == "fail"
        result = done.get("value") if known else UNKNOWN
        key = SINGLE_KEY
        if key_field is not None and key_field in invoke:
            key = key_name(invoke[key_field])
        elif independent:
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                _not_a_pair(value, where(at))
            key, value = value
            try:
                key = names[key]
            except KeyError:
                name = names[key] = key_name(key)   # (cached under the key itself)
                key = name
            except TypeError:  # unhashable: a list or a map as a key
                key = key_name(key)
            if known:
                if not isinstance(result, (list, tuple)) or len(result) != 2:
                    _not_a_pair(result, where(end))
                result = result[1]
        try:
            inp, out = model_call(f, value, FAILED if kind == "fail" else result)
        except ValueError as e:
            raise HistoryError(f"{where(at)}: {e}") from None
        if out is UNKNOWN and read_only(inp, out):
            prepared.skipped_unknown += 1
            continue
        last = done if done is not None else invoke
        call = Call(inp, out, inv, end if known else None, end, invoke.get("process"), f,
                    result if kind == "ok" else value, kind,
                    last.get("index", end if done is not None else inv),
                    None if lone else invoke.get("index", inv),
                    None if lone else invoke.get("time"), done.get("time") if done is not None else None)
        calls = keys.get(key)
        if calls is None:
            keys[key] = [call]
        else:
            calls.append(call)
    return prepared


def _malformed(history) -> None:
    """Raise pairing's own error for the first malformed op."""
    pair(history)
    raise HistoryError("malformed history")  # not reached: pair raises on what we reject


def _not_a_pair(value, at: str):
    raise HistoryError(f"{at}: with independent keys a value must be [key, value], got {value!r}")
