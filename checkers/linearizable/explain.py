"""Why a history is not linearizable, in words a user can check against the history.

What Knossos reports, for one key: the op that cannot be linearized (the first completion
the search could never get past), the last `ok` op before it (:previous-ok), the longest
partial linearization, and the final paths: from every configuration that got that far,
the states each order of the concurrent ops reaches, and the failing op unable to follow
any of them ("after write 2 by p76 [index 472] the register holds 2; read 0 by p70
[index 491] cannot follow").
"""
from __future__ import annotations

from typing import Any

from .models import FAILED, UNKNOWN, Model

SHOWN_LINEARIZED = 20   # tail of the longest partial linearization kept in the result
MAX_PATH_LINES = 12     # final paths shown per failing key
MAX_ORDER_DEPTH = 2     # concurrent ops tried ahead of the failing op, per order shown
MAX_CONCURRENT = 50     # concurrent ops named in the result


def jsonable(x: Any) -> Any:
    """Model and history values as JSON: tuples and sets become lists, markers None."""
    if x is None or isinstance(x, (bool, int, float)):
        return x
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (set, frozenset)):
        return sorted((jsonable(v) for v in x), key=repr)
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if x is UNKNOWN or x is FAILED:
        return None
    return repr(x)


def op_ref(call, model: Model) -> dict:
    """How results name an op: its index (the completion's, as Knossos does), process,
    f, value, what happened to it, and the model's words for it."""
    return {"index": jsonable(call.index), "invoke_index": jsonable(call.invoke_index),
            "process": jsonable(call.process), "f": call.f, "value": jsonable(call.value),
            "type": call.kind, "op": model.describe_op(call.inp, call.out)}


def op_text(ref: dict) -> str:
    """"read 0 by p70 [index 491]"; ops of unknown outcome say so."""
    p = ref["process"]
    who = f"p{p}" if isinstance(p, int) else str(p)
    where = f"index {ref['index']}"
    if ref["type"] == "info":
        where += ", info"
    elif ref["type"] == "open":
        where = f"invoked at index {ref['invoke_index']}, never completed"
    return f"{ref['op']} by {who} [{where}]"


def explain_failure(calls: list, model: Model, outcome) -> dict:
    """The explanation of one key's failed search (see the module docstring)."""
    bad = calls[outcome.stuck_at]
    bad_ref = op_ref(bad, model)
    previous, concurrent, open_after = _around(calls, bad)
    path = outcome.path
    shown = max(0, len(path) - SHOWN_LINEARIZED)   # only the tail is kept: only it is named
    linearized = [dict(op_ref(calls[cid], model), n=n, state=model.describe(state))
                  for n, (cid, state) in enumerate(path[shown:], shown + 1)]
    number = {cid: n for n, (cid, _) in enumerate(path, 1)}
    paths, cut = _final_paths(calls, model, outcome, bad, open_after)
    return {
        "op": bad_ref,
        "previous_ok": op_ref(previous, model) if previous is not None else None,
        "linearized_count": len(path),
        "linearized": linearized,
        "concurrent": [dict(op_ref(calls[i], model), linearized=number.get(i))
                       for i in concurrent[-MAX_CONCURRENT:]],
        "final_paths": paths,
        "final_paths_cut": cut,
        "final_states": sorted({model.describe(state) for _, state, _ in outcome.finals}),
    }


def _around(calls: list, bad) -> tuple[Any, list[int], list[int]]:
    """In one pass over the calls (their fields by position, see calls.Call): the last ok
    call completed before `bad` completed (None if none); the calls concurrent with it
    (ops of unknown outcome stay concurrent with everything after their invocation), in
    invocation order, since the most recently invoked are the telling ones; and the calls
    invoked before it completed that complete after it or never (those the furthest
    point may have left out: the search had linearized every call completing before
    `bad`, its first pending completion)."""
    bad_inv, bad_ret, bad_end = bad[2], bad[3], bad[4]
    previous, previous_end = None, -1
    concurrent: list[int] = []
    open_after: list[int] = []
    for i, c in enumerate(calls):
        inv, ret, end = c[2], c[3], c[4]
        if end is not None and previous_end < end < bad_end and c[8] == "ok":
            previous, previous_end = c, end
        if inv >= bad_end or c is bad:
            continue
        if ret is None:
            concurrent.append(i)
            open_after.append(i)
            continue
        if end > bad_inv:
            concurrent.append(i)
        if ret >= bad_ret:
            open_after.append(i)
    return previous, concurrent, open_after


def _final_paths(calls, model, outcome, bad, open_after) -> tuple[list[dict], bool]:
    """From each configuration at the furthest point, the states that orders of up to
    MAX_ORDER_DEPTH concurrent ops reach, each ending with `bad` unable to follow.
    Breadth first, so the shortest orders (the most telling) come first; the most
    recently invoked ops are tried first. True as second value when lines were cut."""
    lines: list[dict] = []
    seen: set = set()
    frontier = []
    # Only the calls of open_after can be left out at the furthest point (_around): they
    # are looked at, not every call before, once for every final configuration.
    latest_first = sorted(open_after, key=lambda i: -calls[i].inv)
    for done, state, last in outcome.finals:
        pending = [i for i in latest_first if i not in done]
        frontier.append(((), state, last, pending))
    for depth in range(MAX_ORDER_DEPTH + 1):
        deeper = []
        for order, s, last, pending in frontier:
            key = (last, frozenset(order), s)
            if key in seen:
                continue
            seen.add(key)
            if len(lines) >= MAX_PATH_LINES:
                return lines, True
            ok, _ = model.step(s, bad.inp, bad.out)
            after = ((last,) if last is not None else ()) + order
            lines.append({"after": [op_ref(calls[i], model) for i in after],
                          "state": model.describe(s), "then_legal": ok})
            if depth < MAX_ORDER_DEPTH and len(deeper) < 4 * MAX_PATH_LINES:
                for i in pending:
                    if i not in order:
                        legal, s2 = model.step(s, calls[i].inp, calls[i].out)
                        if legal:
                            deeper.append((order + (i,), s2, last, pending))
        frontier = deeper
    return lines, False


def path_text(line: dict, bad_ref: dict) -> str:
    ops = ", ".join(op_text(r) for r in line["after"])
    head = f"after {ops} {line['state']}" if ops else f"initially {line['state']}"
    follow = "could follow" if line["then_legal"] else "cannot follow"
    return f"{head}; {op_text(bad_ref)} {follow}"


def failure_text(key: str, failure: dict) -> list[str]:
    bad = failure["op"]
    lines = [f"key {key}: {op_text(bad)} cannot be linearized."]
    if failure.get("anomaly"):
        lines.append(f"  {failure['anomaly']['text']}.")
    prev = failure["previous_ok"]
    if prev is not None:
        lines.append(f"  The history linearizes up to it: the last ok op before it is {op_text(prev)}.")
    n = failure["linearized_count"]
    if n:
        shown = failure["linearized"]
        lines.append(f"  Longest partial linearization: {n} ops"
                     + (f", the last {len(shown)}:" if len(shown) < n else ":"))
        for item in shown:
            lines.append(f"    {item['n']:>5}. {op_text(item)} -> {item['state']}")
    else:
        lines.append("  Not even the first op can be linearized.")
    pending = [r for r in failure["concurrent"] if r["linearized"] is None]
    before = sorted((r for r in failure["concurrent"] if r["linearized"] is not None),
                    key=lambda r: r["linearized"])
    if pending:
        lines.append("  Concurrent with it, not linearized: " + _some(pending, op_text))
    if before:
        lines.append("  Concurrent with it, linearized before it: "
                     + _some(before, lambda r: f"#{r['linearized']} {op_text(r)}"))
    lines.append("  Every order the search could reach ends the same way:")
    for line in failure["final_paths"]:
        lines.append("    " + path_text(line, bad))
    if failure["final_paths_cut"]:
        lines.append("    (more orders not shown)")
    if failure.get("html"):
        lines.append(f"  Timeline: {failure['html']}")
    return lines


def _some(refs: list[dict], text) -> str:
    shown = ", ".join(text(r) for r in refs[-8:])
    return (f"{len(refs) - 8} more, then " if len(refs) > 8 else "") + shown


def explain_text(result: dict) -> str:
    """The terminal explanation of a LinearizableChecker result."""
    model = result.get("model", "?")
    valid = result.get("valid")
    n = result.get("keys_checked", 0)
    keys = "key" if n == 1 else "keys"
    failures = result.get("failures", {})
    unknown = result.get("unknown_keys", [])
    if valid is True:
        lines = [f"Linearizable (model {model}, {n} {keys}, {result.get('ops_checked', 0)} ops checked)."]
    elif valid is False:
        lines = [f"NOT linearizable (model {model}): {len(failures)} of {n} {keys} cannot be linearized."]
    else:
        lines = [f"Unknown (model {model}): {len(unknown)} of {n} {keys} could not be decided."]
    if result.get("error"):
        lines.append(f"  {result['error']}")
    for key, failure in failures.items():
        lines.extend(failure_text(key, failure))
    reasons = result.get("unknown_reasons", {})
    undecided: dict[str, list] = {}   # keys by reason: many keys may share one
    for key in unknown:
        undecided.setdefault(reasons.get(key, "no reason recorded"), []).append(key)
    for reason, keys_of in undecided.items():
        if len(keys_of) <= 3:
            lines.extend(f"key {key}: undecided ({reason})." for key in keys_of)
        else:
            shown = ", ".join(map(str, keys_of[:8])) + (", ..." if len(keys_of) > 8 else "")
            lines.append(f"{len(keys_of)} keys undecided ({reason}): {shown}")
    return "\n".join(lines)
