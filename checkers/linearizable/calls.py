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

from .models import FAILED, UNKNOWN, Model

NEMESIS = "nemesis"
FAIL_CAS = ("ignored", "observed")
SINGLE_KEY = "all"  # the key name of a history that is not split by key


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
    """Pair invocations with completions (a process has one open op at a time) and build
    the calls of each key. Raises ValueError naming the op on a malformed history."""
    if fail_cas not in FAIL_CAS:
        raise ValueError(f"fail_cas must be one of {', '.join(FAIL_CAS)}, got {fail_cas!r}")
    where = getattr(history, "where", None) or (lambda i: f"op {i}")
    prepared = Prepared()
    open_by_process: dict[Any, int] = {}
    pairs: list[tuple[int, int | None]] = []
    for i, op in enumerate(history):
        if not isinstance(op, dict):
            raise ValueError(f"{where(i)}: an op must be a map, got {type(op).__name__}")
        t = op.get("type")
        p = op.get("process")
        if isinstance(p, str) and str.__str__(p) == NEMESIS:
            prepared.ignored += 1
            continue
        if t == "invoke":
            if p in open_by_process:
                raise ValueError(f"{where(i)}: process {p} invokes while its op at "
                                 f"{where(open_by_process[p])} is still open")
            open_by_process[p] = len(pairs)
            pairs.append((i, None))
        elif t in ("ok", "fail", "info"):
            slot = open_by_process.pop(p, None)
            if slot is None:
                if t == "info":
                    prepared.ignored += 1
                    continue
                raise ValueError(f"{where(i)}: {t} of {op.get('f')!r} by process {p} has no invocation")
            pairs[slot] = (pairs[slot][0], i)
        else:
            raise ValueError(f"{where(i)}: unknown op type {t!r} (expected invoke, ok, fail or info)")

    for inv, end in pairs:
        call_or_none = _call(history, inv, end, model, independent, fail_cas, where, prepared)
        if call_or_none is not None:
            key, call = call_or_none
            prepared.keys.setdefault(key, []).append(call)
    return prepared


def _call(history, inv, end, model, independent, fail_cas, where, prepared):
    invoke = history[inv]
    done = history[end] if end is not None else None
    kind = str.__str__(done.get("type")) if done is not None else "open"
    f = invoke.get("f")
    if not isinstance(f, str):
        raise ValueError(f"{where(inv)}: op has no f (a string), got {f!r}")
    f = str.__str__(f)
    if kind == "fail":
        if not (f == "cas" and fail_cas == "observed"):
            prepared.dropped_fail += 1
            return None
    key, value = SINGLE_KEY, invoke.get("value")
    result = done.get("value") if kind in ("ok", "fail") else UNKNOWN
    key_field = model.key_field
    if key_field is not None and key_field in invoke:
        key = key_name(invoke[key_field])
    elif independent:
        key, value = _split(value, inv, where)
        if kind in ("ok", "fail"):
            result = _split(result, end, where)[1]
    if kind == "fail":
        result = FAILED
    try:
        inp, out = model.call(f, value, result)
    except ValueError as e:
        raise ValueError(f"{where(inv)}: {e}") from None
    if out is UNKNOWN and model.read_only(inp, out):
        prepared.skipped_unknown += 1
        return None
    known = kind in ("ok", "fail")
    shown = result if kind == "ok" else value
    return key, Call(
        inp=inp, out=out, inv=inv, ret=end if known else None, end=end, process=invoke.get("process"),
        f=f, value=shown, kind=kind,
        index=(done if done is not None else invoke).get("index", end if done is not None else inv),
        invoke_index=invoke.get("index", inv), t0=invoke.get("time"),
        t1=done.get("time") if done is not None else None)


def _split(value, pos: int, where):
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{where(pos)}: with independent keys a value must be [key, value], got {value!r}")
    return key_name(value[0]), value[1]
