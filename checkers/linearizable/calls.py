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
_PLAIN = frozenset({int, str, type(None), bool, float, type(UNKNOWN)})


class Call:
    """One operation as the search sees it, with what explanations need to name it.

    inp, out: the model's; inv: position of the invocation in the history (NO_PARTNER
    for a lone completion); ret: position of the completion if the op must linearize
    before it; end: position of the completion record, whatever its type; value: the
    value to show (the completion's if known, else the invocation's); kind: ok, info
    (outcome unknown), open (never completed), fail (observed). Only explanations read
    `index` (the op's, the completion's when it has one), `invoke_index` and `t0`/`t1`
    (`time` of invocation and completion), so those are looked up in the history when
    asked for, not for every op."""
    __slots__ = ("inp", "out", "inv", "ret", "end", "process", "f", "value", "kind", "_history")

    def __init__(self, inp, out, inv, ret, end, process, f, value, kind, history):
        self.inp, self.out, self.inv, self.ret, self.end = inp, out, inv, ret, end
        self.process, self.f, self.value, self.kind, self._history = process, f, value, kind, history

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
    memo: dict = {}
    for inv, end in zip(invs, ends):
        lone = inv == NO_PARTNER
        at = end if lone else inv  # where errors point
        invoke = history[at]       # a lone completion stands for its own invocation
        done = history[end] if end is not None else None
        if done is None:
            kind = "open"
        else:
            kind = done["type"]
            if type(kind) is not str:
                kind = str.__str__(kind)
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
            kt = type(key)
            if kt is int or kt is str:   # exactly: True == 1 and "x" == :x, yet names differ
                name = names.get(key)
                if name is None:
                    name = names[key] = key_name(key)
                key = name
            else:
                key = key_name(key)
            if known:
                if not isinstance(result, (list, tuple)) or len(result) != 2:
                    _not_a_pair(result, where(end))
                result = result[1]
        got = FAILED if kind == "fail" else result
        vt, gt = type(value), type(got)
        # Most ops repeat a few (f, value, outcome)s: the model's answer is remembered
        # for those of plain types (the types are part of the key, since 1 == True).
        memo_key = (f, vt, value, gt, got) if vt in _PLAIN and gt in _PLAIN else None
        answer = memo.get(memo_key) if memo_key is not None else None
        if answer is None:
            try:
                inp, out = model_call(f, value, got)
            except ValueError as e:
                raise HistoryError(f"{where(at)}: {e}") from None
            answer = (inp, out, out is UNKNOWN and bool(read_only(inp, out)))
            if memo_key is not None:
                memo[memo_key] = answer
        inp, out, skip = answer
        if skip:
            prepared.skipped_unknown += 1
            continue
        call = Call(inp, out, inv, end if known else None, end, invoke.get("process"), f,
                    result if kind == "ok" else value, kind, history)
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
