"""The op record and the History container (see ARCHITECTURE.md, "The history").

An op is a plain dict: index, time (ns since the test started), type (invoke / ok / fail /
info), process (an int, or "nemesis"), f, value, and optionally node and error. Plain dicts
keep the runner's hot path cheap and make every op JSON as it stands.

This package is the contract between the runner (which writes histories) and the checkers
(which read them): it sits in `core`, below both, so it is written once.
"""
from __future__ import annotations

from core.errors import HistoryError

TYPES = ("invoke", "ok", "fail", "info")
COMPLETIONS = ("ok", "fail", "info")
NEMESIS = "nemesis"


def retire(process: int, concurrency: int) -> int:
    """The process a thread continues as after its op ended in `info` (Jepsen's rule).

    An `info` op may still take effect at any later time, so the process that issued it
    stays open forever; the thread goes on under a new process number, and a process
    never has two ops open."""
    return process + concurrency


class History(list):
    """A list of op dicts that remembers where it came from, so errors can name the line.

    `lines[i]` is the 1-based line of op i in `source` (None when built in memory).
    """

    def __init__(self, ops=(), source: str = "<memory>", lines: list[int] | None = None):
        super().__init__(ops)
        self.source = source
        self.lines = lines

    def where(self, i: int) -> str:
        if self.lines is not None and i < len(self.lines):
            return f"{self.source}:{self.lines[i]}"
        return f"{self.source}: op {i}"


def is_client(op: dict) -> bool:
    return op.get("process") != NEMESIS
