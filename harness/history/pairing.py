"""Pairing invocations with completions, and validating a history's shape.

Jepsen's rule: a process has at most one op open; its invocation is completed by the next
ok / fail / info of the same process. Nemesis ops may come as a lone `info` (what was done)
or as an invoke/info pair; client ops must pair.
"""
from __future__ import annotations

from .op import COMPLETIONS, NEMESIS, TYPES, History, HistoryError


def pair_indices(history: list[dict]) -> dict[int, int | None]:
    """Map each invocation's position to its completion's position (None: never completed).

    Positions are list positions, not `index` fields (those may be sparse in foreign files).
    Raises HistoryError on the shape errors `validate` describes."""
    return _walk(history)


def validate(history: list[dict]) -> None:
    """Raise HistoryError naming the line of the first malformed op: an unknown type, a
    process with two open ops, a client completion without an invocation."""
    _walk(history)


def _walk(history: list[dict]) -> dict[int, int | None]:
    where = history.where if isinstance(history, History) else (lambda i: f"op {i}")
    open_by_process: dict[object, int] = {}
    pairs: dict[int, int | None] = {}
    for i, op in enumerate(history):
        t = op.get("type")
        if t not in TYPES:
            raise HistoryError(f"{where(i)}: unknown op type {t!r} (expected one of {', '.join(TYPES)})")
        p = op.get("process")
        if isinstance(p, list):
            raise HistoryError(f"{where(i)}: process must be an integer or \"nemesis\", got {p!r}")
        if t == "invoke":
            if p in open_by_process:
                j = open_by_process[p]
                raise HistoryError(f"{where(i)}: process {p} invokes {op.get('f')!r} while its op at "
                                   f"{where(j)} is still open (a process has at most one open op)")
            open_by_process[p] = i
            pairs[i] = None
        else:
            j = open_by_process.pop(p, None)
            if j is None:
                if p == NEMESIS or str(p) == NEMESIS or t == "info":
                    continue  # a lone info: nemesis report or a foreign tool's log line
                raise HistoryError(f"{where(i)}: {t} of {op.get('f')!r} by process {p} has no invocation")
            pairs[j] = i
    return pairs


def completions(history: list[dict]) -> list[tuple[dict, dict | None]]:
    """(invocation, completion or None) for every invocation, in invocation order."""
    pairs = pair_indices(history)
    return [(history[i], history[j] if j is not None else None) for i, j in pairs.items()]


__all__ = ["pair_indices", "validate", "completions", "COMPLETIONS"]
