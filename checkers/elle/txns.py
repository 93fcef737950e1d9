"""The transactions of a history, numbered: the nodes every Elle graph is built on.

A node is a completion that may have taken effect: `ok` or `info` (Elle's "possible" ops;
a `fail` certainly did not happen, an invocation is only an intention). Nodes are integers
in history order, so graphs are integer graphs and per-node facts live in parallel lists.

Realtime order comes from positions in the history, never from `time`: an op b follows a
when b was invoked after a completed. Ops may lack `process` (then they have no process
order and pair by their absent process) and `f` (then they count as transactions).
"""
from __future__ import annotations

from typing import Any

NEMESIS = "nemesis"


class TxnHistory:
    """Client transactions of a history, paired and numbered.

    Per node n: `ops[n]` (the completion op), `ok[n]`, `index[n]` (the op's `index`, or its
    position when absent), `process[n]`, `invoke_index[n]` (the invocation's `index`, or
    None when the history holds no invocation for it).
    `fails`: failed completions. `events`: the realtime skeleton in history order, `~n` for
    the invocation of node n and `n` for the completion of ok node n (info completions can
    precede nothing, so they have no completion event).
    """

    def __init__(self, history: list[dict]):
        self.ops: list[dict] = []
        self.ok: list[bool] = []
        self.index: list[Any] = []
        self.process: list[Any] = []
        self.invoke_index: list[Any] = []
        self.invoke_time: list[Any] = []
        self.position: list[int] = []
        self.invoke_position: list[Any] = []
        self.fails: list[dict] = []
        self.invocations_without_completion: list[dict] = []
        self.events: list[int] = []
        open_by_process: dict[Any, tuple[dict, int, int]] = {}
        events = self.events
        for pos, op in enumerate(history):
            if not isinstance(op, dict):
                raise ValueError(f"op {pos}: expected an object, got {type(op).__name__}")
            if op.get("process") == NEMESIS or op.get("f", "txn") not in ("txn", None):
                continue
            typ = op.get("type")
            value = op.get("value")
            if value is not None and not isinstance(value, (list, tuple)):
                raise ValueError(f"op {op.get('index', pos)}: a transaction's value must be a "
                                 f"list of micro-ops, got {value!r}")
            p = op.get("process")
            if typ == "invoke":
                if p in open_by_process:  # a lost completion; the old invocation stays open
                    old, old_slot, _ = open_by_process[p]
                    events[old_slot] = None
                    self.invocations_without_completion.append(old)
                open_by_process[p] = (op, len(events), pos)
                events.append(0)  # placeholder: filled in when the completion arrives
                continue
            if typ not in ("ok", "info", "fail"):
                raise ValueError(f"op {op.get('index', pos)}: unknown op type {typ!r} "
                                 f"(expected invoke, ok, info or fail)")
            inv, slot, inv_pos = open_by_process.pop(p, (None, None, None))
            if typ == "fail":
                self.fails.append(op)
                if slot is not None:
                    events[slot] = None
                continue
            n = len(self.ops)
            self.ops.append(op)
            self.ok.append(typ == "ok")
            self.index.append(op.get("index", pos))
            self.process.append(p)
            self.invoke_index.append(None if inv is None else inv.get("index"))
            self.invoke_time.append(None if inv is None else inv.get("time"))
            self.position.append(pos)
            self.invoke_position.append(inv_pos)
            if slot is not None:
                events[slot] = ~n
            if typ == "ok":
                events.append(n)
        for inv, slot, _ in open_by_process.values():
            events[slot] = None
            self.invocations_without_completion.append(inv)
        self.events = [e for e in events if e is not None]

    def __len__(self) -> int:
        return len(self.ops)

    def precedes(self, a: int, b: int, realtime: bool) -> bool:
        """Whether a precedes b in real-time order (a completed ok before b was invoked),
        or, when not `realtime`, in process order (same process, both ok, a first)."""
        if realtime:
            inv = self.invoke_position[b]
            return self.ok[a] and inv is not None and self.position[a] < inv
        p = self.process[a]
        return p is not None and p == self.process[b] and self.ok[a] and self.ok[b] and a < b

    def value(self, n: int) -> list:
        return self.ops[n].get("value") or []

    def describe(self, n: int) -> str:
        """One line naming a node for humans: index, process, type and its micro-ops."""
        op = self.ops[n]
        who = "" if self.process[n] is None else f" by process {self.process[n]}"
        return f"op {self.index[n]}{who} ({op.get('type')}): {_mops_text(self.value(n))}"


def _mops_text(mops: list) -> str:
    parts = []
    for mop in mops:
        f, k, v = (list(mop) + [None, None, None])[:3]
        parts.append(f"{f} {k} {_value_text(v)}")
    return "[" + ", ".join(parts) + "]"


def _value_text(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(map(str, v)) + "]"
    return "nil" if v is None else str(v)
