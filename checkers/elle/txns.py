"""The transactions of a history, numbered: the nodes every Elle graph is built on.

A node is a completion that may have taken effect: `ok` or `info` (Elle's "possible" ops;
a `fail` certainly did not happen, an invocation is only an intention). Nodes are integers
in history order, so graphs are integer graphs and per-node facts live in parallel lists.

Realtime order comes from positions in the history, never from `time`: an op b follows a
when b was invoked after a completed. Pairing is `core.history.pairing`'s: a completion
without an invocation (Elle's test histories are often completions only) was invoked
before everything; a process invoking while its op is open is an error. Ops may lack
`process` (then they have no process order and pair by their absent process) and `f`
(then they count as transactions).
"""
from __future__ import annotations

from array import array
from typing import Any

from core.history import NEMESIS, NO_PARTNER, HistoryError, pair

_DROP = -2**31                      # an event slot whose transaction never became a node


class TxnHistory:
    """Client transactions of a history, paired and numbered.

    Per node n: `ops[n]` (the completion op), `ok[n]`, `index[n]` (the op's `index`, or its
    position when absent), `process[n]`, `invocations[n]` (the invocation op, or None when
    the history holds none), `position[n]` and `invoke_position[n]` (where the completion
    and the invocation stand in the history, -1 for none). `fails`: failed completions.
    `events`: the real-time skeleton in history order: `~n` for the invocation of node n,
    `n` for the completion of ok node n (info completions can precede nothing, so they
    have no completion event). Per-node facts are compact arrays: a million transactions
    must fit beside their history.
    """

    def __init__(self, history: list[dict]):
        self.ops: list[dict] = []
        self.ok = bytearray()
        self.index: list[Any] = []
        self.process: list[Any] = []
        self.invocations: list[dict | None] = []
        self.position = array("q")
        self.invoke_position = array("q")
        self.fails: list[dict] = []
        events = array("i")
        # Invocation events wait for their node number, known only when the completion
        # comes: slot_of[invocation position] is its place in `events`.
        slot_of: dict[int, int] = {}
        ops, ok, index, process, invocations = (self.ops, self.ok, self.index, self.process,
                                                self.invocations)
        position, invoke_position = self.position, self.invoke_position
        partner = pair(history).partner
        for pos, op in enumerate(history):
            p = op.get("process")
            if p == NEMESIS or op.get("f", "txn") not in ("txn", None):
                continue
            typ = op["type"]
            value = op.get("value")
            if value is not None and type(value) is not list and not isinstance(value, (list, tuple)):
                raise HistoryError(f"op {op.get('index', pos)}: a transaction's value must be a "
                                 f"list of micro-ops, got {value!r}")
            if typ == "invoke":
                if partner[pos] != NO_PARTNER:  # an invocation never completed is no node
                    slot_of[pos] = len(events)
                    events.append(_DROP)  # filled in when the completion arrives
                continue
            inv_pos = partner[pos]
            if typ == "fail":
                self.fails.append(op)
                slot_of.pop(inv_pos, None)
                continue
            n = len(ops)
            ops.append(op)
            ok.append(typ == "ok")
            index.append(op.get("index", pos))
            process.append(p)
            invocations.append(history[inv_pos] if inv_pos != NO_PARTNER else None)
            position.append(pos)
            invoke_position.append(inv_pos)
            slot = slot_of.pop(inv_pos, -1)
            if slot >= 0:
                events[slot] = ~n
            if typ == "ok":
                events.append(n)
        self.events = array("i", (e for e in events if e != _DROP))

    def __len__(self) -> int:
        return len(self.ops)

    def precedes(self, a: int, b: int, realtime: bool) -> bool:
        """Whether a precedes b in real-time order (a completed ok before b was invoked),
        or, when not `realtime`, in process order (same process, both ok, a first)."""
        if realtime:
            return bool(self.ok[a]) and 0 <= self.position[a] < self.invoke_position[b]
        p = self.process[a]
        return p is not None and p == self.process[b] and self.ok[a] and self.ok[b] and a < b

    def invoke_index(self, n: int):
        inv = self.invocations[n]
        return None if inv is None else inv.get("index")

    def invoke_time(self, n: int):
        inv = self.invocations[n]
        return None if inv is None else inv.get("time")

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
