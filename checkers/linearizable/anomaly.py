"""The anomaly behind a failed key, in the user's terms: "stale read", on which node, what
it returned, which value was current, and which faults were in force.

The search says *that* no linearization exists past an op; for register histories the
usual reason has a name. A read that returned v is

- a **stale read** when a write of some other value c completed before the read began,
  and every write of v had completed before that write of c began: v was overwritten for
  certain, yet the node served it;
- a **read of a value never written** when no write of v (ok, failed-to-tell or never
  completed) exists and v is not the initial value.

Everything here is derived from the history (the completion's `node` and `time`, the
nemesis's fault periods), nothing from the target. Other failures get no name (None): the
search's own explanation stands for them.
"""
from __future__ import annotations

import json
from typing import Any

from core.history.faults import FaultPeriod

from .explain import jsonable, op_ref, op_text
from .models import FAILED, UNKNOWN, Model, show

SHOWN_FAULT_CHARS = 120  # what a fault's start value may take in the sentence


def name_anomaly(calls: list, bad_index: int, model: Model, history: list[dict],
                 faults: list[FaultPeriod]) -> dict | None:
    """The named anomaly of the op calls[bad_index] (see the module doc), or None."""
    bad = calls[bad_index]
    if not _is_register_read(bad) or bad.out is UNKNOWN or bad.kind != "ok":
        return None
    returned = bad.out
    written = _written(calls)
    writers = [c for c, v in written if v == returned]
    read_op = _op(history, bad.end) or _op(history, bad.inv) or {}
    node = read_op.get("node") or (_op(history, bad.inv) or {}).get("node")
    begun = _seconds((_op(history, bad.inv) or {}).get("time"))
    where = f" on {node}" if node else ""
    at = f" at {begun:.3f} s" if begun is not None else ""
    found = {"node": node, "returned": jsonable(returned), "read": op_ref(bad, model),
             "read_began": begun}
    if not writers and returned != model.init():
        found.update(kind="read of a value never written", faults=_faults_at(
            faults, history, bad, node))
        found["text"] = (f"read of a value never written: {op_text(found['read'])}{where}"
                         f"{at} returned {_show(returned)}, which no op wrote"
                         + _fault_words(found["faults"], node))
        return found
    current, value = max(((c, v) for c, v in written if c.kind == "ok" and c.end is not None and c.end < bad.inv),
                         key=lambda cv: cv[0].end, default=(None, None))
    if current is None or value == returned:
        return None
    if any(w.kind != "ok" or w.end >= current.inv for w in writers):
        return None  # a write of v may have taken effect after the current one: not certain
    written = _seconds((_op(history, current.end) or {}).get("time"))
    found.update(kind="stale read", current=jsonable(value), current_write=op_ref(current, model),
                 current_written=written, faults=_faults_at(faults, history, bad, node))
    done = f", completed at {written:.3f} s" if written is not None else ""
    found["text"] = (f"stale read: {op_text(found['read'])}{where}{at} returned "
                     f"{_show(returned)}, but {_show(value)} had been written "
                     f"({op_text(found['current_write'])}{done}) before the read began"
                     + _fault_words(found["faults"], node))
    return found


def _is_register_read(call) -> bool:
    return isinstance(call.inp, tuple) and call.inp[:1] == ("read",) and len(call.inp) == 1


def _written(calls: list) -> list[tuple[Any, Any]]:
    """(call, value) for each call that may have left a value in a register: writes, and
    CASes not known to have failed (a read, a failed op, an op of another model leaves
    none). One loop, fields by position (calls.Call: inp, out, kind): it runs over every
    call of a failed key, and a function call per call was most of its cost."""
    found = []
    for c in calls:
        inp = c[0]
        if not isinstance(inp, tuple) or c[8] == "fail":
            continue
        n = len(inp)
        if n == 2 and inp[0] == "write":
            found.append((c, inp[1]))
        elif n == 3 and inp[0] == "cas" and c[1] is not FAILED:
            found.append((c, inp[2]))
    return found


def _faults_at(faults: list[FaultPeriod], history: list[dict], bad, node) -> list[dict]:
    """The fault periods in force while the read ran, those naming its node first."""
    t0 = (_op(history, bad.inv) or {}).get("time")
    t1 = (_op(history, bad.end) or {}).get("time", t0)
    if not isinstance(t0, int):
        return []
    found = []
    for p in faults:
        if p.start <= (t1 if isinstance(t1, int) else t0) and p.end >= t0:
            grudge = p.started_with.get("grudge") if isinstance(p.started_with, dict) else None
            found.append({"kind": p.kind, "since": _seconds(p.start),
                          "until": _seconds(p.end) if p.stopped else None,
                          "on_node": bool(node) and _names(p.started_with, node),
                          # a partition's grudge: whom the node could not hear from
                          "cut_off_from": jsonable(grudge.get(node))
                          if isinstance(grudge, dict) and grudge.get(node) else None,
                          "what": jsonable(p.started_with)})
    return sorted(found, key=lambda f: not f["on_node"])


def _fault_words(faults: list[dict], node) -> str:
    if not faults:
        return "; no fault was in force"
    words = []
    for f in faults:
        what = json.dumps(f["what"], separators=(",", ":"))
        if len(what) > SHOWN_FAULT_CHARS:
            what = what[:SHOWN_FAULT_CHARS] + "..."
        since = f" since {f['since']:.3f} s" if f["since"] is not None else ""
        if f.get("cut_off_from"):
            words.append(f"{f['kind']}{since}: {node} cut off from "
                         f"{', '.join(map(str, f['cut_off_from']))}")
            continue
        on = f" involving {node}" if f["on_node"] else ""
        words.append(f"{f['kind']}{on}{since} ({what})")
    return "; in force: " + "; ".join(words)


def _names(value: Any, node: str) -> bool:
    """Does a fault's start value name the node anywhere (a key, a list item, a word)?"""
    if isinstance(value, str):
        return value == node
    if isinstance(value, dict):
        return any(_names(k, node) or _names(v, node) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_names(v, node) for v in value)
    return False


def _op(history: list[dict], position) -> dict | None:
    if isinstance(position, int) and 0 <= position < len(history):
        return history[position]
    return None


def _seconds(ns) -> float | None:
    return ns / 1e9 if isinstance(ns, int) else None


def _show(value: Any) -> str:
    return show(value)
