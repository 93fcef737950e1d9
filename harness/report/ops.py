"""Client operations as intervals: each invocation paired with its completion.

The plots and the timeline see an op as one interval (invoke to completion) with the
completion's type; pairing follows Jepsen's rule (a process has one op open at a time).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.history import NEMESIS, NO_PARTNER, pair


@dataclass(slots=True)
class Interval:
    process: Any
    f: Any
    type: str              # ok / fail / info, or "open" when the op never completed
    start: int             # ns (or the op's position when the history has no times)
    end: int | None        # ns; None when the op never completed
    value: Any             # as invoked
    result: Any            # as completed (the invocation's value when it never completed)
    node: Any
    error: Any

    @property
    def latency(self) -> int | None:
        return None if self.end is None else self.end - self.start


def has_times(history: list[dict]) -> bool:
    """Whether every op carries a time (histories from Porcupine's logs carry none)."""
    return bool(history) and all(isinstance(op.get("time"), int) for op in history)


def intervals(history: list[dict], include_nemesis: bool = False) -> list[Interval]:
    """Every invocation as an interval, in invocation order; lone completions (a nemesis
    report, a foreign tool's lone info) become zero-length intervals of their own.
    Positions stand in for times when the history has none."""
    timed = has_times(history)

    def when(i: int) -> int:
        return history[i]["time"] if timed else i

    partner = pair(history).partner
    out: list[Interval] = []
    for i, op in enumerate(history):
        if op.get("process") == NEMESIS and not include_nemesis:
            continue
        j = partner[i]
        if op["type"] == "invoke":
            done = history[j] if j != NO_PARTNER else None
            out.append(Interval(op.get("process"), op.get("f"),
                                done["type"] if done else "open", when(i),
                                when(j) if done else None, op.get("value"),
                                done.get("value") if done else op.get("value"),
                                (done or op).get("node", op.get("node")),
                                done.get("error") if done else None))
        elif j == NO_PARTNER:
            out.append(Interval(op.get("process"), op.get("f"), op.get("type"), when(i), when(i),
                                op.get("value"), op.get("value"), op.get("node"), op.get("error")))
    return out
