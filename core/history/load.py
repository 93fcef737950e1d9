"""Read a history from any supported format, chosen by content, not by file name."""
from __future__ import annotations

import os

from ..gc_pause import paused_gc
from .edn import read_edn_history
from .jsonl import read_jsonl
from .op import History, HistoryError


def sniff_format(path: str) -> str:
    """'jsonl', 'edn' or 'jepsen-log', from the first meaningful character of the file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            s = line.strip()
            if not s or s.startswith(";"):
                continue
            if s.startswith("{\"") or s.startswith("{ \""):
                return "jsonl"
            if s[0] in "[{#(":
                return "edn"
            return "jepsen-log"
    return "jsonl"


def load_history(path: str, fmt: str | None = None) -> History:
    """Load a history (our JSONL, Jepsen EDN, or Jepsen/Porcupine log lines).

    Raises HistoryError with one line naming file and line on anything unreadable."""
    if os.path.isdir(path):
        candidate = os.path.join(path, "history.jsonl")
        if not os.path.exists(candidate):
            raise HistoryError(f"{path}: a directory without history.jsonl")
        path = candidate
    if not os.path.exists(path):
        raise HistoryError(f"{path}: no such file")
    try:
        fmt = fmt or sniff_format(path)
        with paused_gc():   # a history is a burst of small acyclic objects (core/gc_pause.py)
            if fmt == "jsonl":
                return read_jsonl(path)
            if fmt == "edn":
                return read_edn_history(path)
            if fmt == "jepsen-log":
                from .jepsen_log import read_jepsen_log
                return read_jepsen_log(path)
    except UnicodeDecodeError as e:
        raise HistoryError(f"{path}: not a text file ({e.reason})") from None
    raise HistoryError(f"{path}: unknown history format {fmt!r}")
