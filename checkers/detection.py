"""Time to detection: when, in a test, the first operation a checker blames was invoked.

A checker that finds a history invalid names the ops it blames in its result as `blamed`:
a list of history `index` values, of invocations or completions (a linearizability failure
blames the op no order could fit, a set check the adds that went missing, Elle the
transactions of each forbidden cycle). This module turns those into one figure a user can
compare across versions of a system and across nemeses: the seconds from the start of the
test to the invocation of the earliest blamed op. The invocation, not the completion: that
is when the harness had already done what exposed the bug.
"""
from __future__ import annotations

from typing import Any


def first_blamed(history: list[dict], result: dict) -> dict[str, Any] | None:
    """{"index", "time" (ns since the test started), "seconds", "checker"} of the earliest
    invocation among the ops blamed by the false checkers in `result` (composed results
    are searched through their `checkers`), or None when none blames an op."""
    blamed: dict[Any, str] = {}
    for name, r in _false_results(result, "result"):
        for index in r.get("blamed") or ():
            blamed.setdefault(index, name)
    if not blamed:
        return None
    invocation = _invocations(history)
    best = None
    for index, checker in blamed.items():
        op = invocation.get(index)
        if op is None or not isinstance(op.get("time"), (int, float)):
            continue
        if best is None or op["time"] < best["time"]:
            best = {"index": op.get("index"), "time": op["time"],
                    "seconds": round(op["time"] / 1e9, 3), "checker": checker}
    return best


def _false_results(result: dict, name: str):
    if not isinstance(result, dict) or result.get("valid") is not False:
        return
    yield name, result
    for sub_name, sub in (result.get("checkers") or {}).items():
        yield from _false_results(sub, sub_name)


def _invocations(history: list[dict]) -> dict[Any, dict]:
    """Each op's `index` -> its invocation (an invocation maps to itself). Jepsen's rule
    pairs a completion with the open invocation of the same process."""
    open_by_process: dict[Any, dict] = {}
    out: dict[Any, dict] = {}
    for op in history:
        process = op.get("process")
        if op.get("type") == "invoke":
            open_by_process[process] = op
            out[op.get("index")] = op
        else:
            out[op.get("index")] = open_by_process.pop(process, op)
    return out
