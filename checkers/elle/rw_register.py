"""Read-write registers: infer the dependency graph from unique writes and version graphs.

A read of x = v depends on the one transaction that wrote x = v (writes are unique): `wr`.
The order of versions is not visible in a register, so it is inferred from sources:
the initial state (nil precedes every value), and optionally writes-follow-reads within a
transaction (`wfr-keys?`), per-key sequential consistency (process order,
`sequential-keys?`), per-key linearizability (real-time order, `linearizable-keys?`) and a
commit order reported by the database (`transaction-order`). A source that would make a
key's version graph cyclic is left out and reported as `cyclic-versions`. Each edge
v1 -> v2 of a version graph gives `ww` from the writers of v1 and `rw` from the readers of
v1 to the writers of v2.

Only external reads (a transaction's first access of a key, when it is a read) and
external writes (its last write of the key) take part; what a transaction does between
them is checked by `internal`.
"""
from __future__ import annotations

from typing import Any

import networkx as nx

from core.history import HistoryError

from .graph import RW, WR, WW, DependencyGraph, realtime_reduction
from .lost_update import LostUpdates
from .txns import TxnHistory

_NONE = object()  # "this transaction tells us nothing about the key"


class _Nil:
    """The initial version, nil, as a graph node (networkx refuses None as a node)."""

    def __repr__(self) -> str:
        return "nil"


NIL = _Nil()


def _node(v):
    return NIL if v is None else v


def _value(v):
    return None if v is NIL else v


class DuplicateWrites(ValueError):
    """A value read from a key that more than one transaction wrote: wr is ambiguous."""


def ext_reads(value) -> dict:
    ext: dict = {}
    touched: set = set()
    for f, k, v in value:
        if f == "r" and k not in touched:
            ext[k] = v
        touched.add(k)
    return ext


def ext_writes(value) -> dict:
    return {k: v for f, k, v in value if f == "w"}


class RWRegister:
    """The analysis of one rw-register history: graph, anomalies, and pair explanations."""

    name = "rw-register"
    # Elle explains a pair by the first of its explainers that can: wr, then ww, then rw.
    explain_order = (WR, WW, RW)

    def __init__(self, txns: TxnHistory, *, wfr_keys: bool = False,
                 sequential_keys: bool = False, linearizable_keys: bool = False,
                 transaction_order: dict | None = None):
        self.txns = txns
        self.anomalies: dict[str, list] = {}
        self.graph = DependencyGraph(len(txns))
        n = len(txns)
        self.reads: list[dict] = [{}] * n
        self.writes: list[dict] = [{}] * n
        self._per_transaction()
        self._wr_edges()
        sources = [("initial-state", self._initial_state)]
        if wfr_keys:
            sources.append(("wfr-keys", self._wfr))
        if sequential_keys:
            sources.append(("sequential-keys", self._sequential))
        if linearizable_keys:
            sources.append(("linearizable-keys", self._linearizable))
        if transaction_order:
            sources.append(("transaction-order", lambda: self._commit_order(transaction_order)))
        self.versions, self.sources = self._version_graphs(sources)
        self._version_edges()

    # -- per transaction -----------------------------------------------------------------

    def _per_transaction(self) -> None:
        txns = self.txns
        internal, g1b = [], []
        lost = LostUpdates("w")
        intermediate: dict[Any, dict[Any, Any]] = {}
        failed: dict[Any, dict[Any, Any]] = {}
        for op in txns.fails:
            _check_mops(op)
            for f, k, v in op.get("value") or ():
                if f == "w":
                    failed.setdefault(k, {})[v] = op.get("index")
            _note_intermediate(op, intermediate)
        for n, op in enumerate(txns.ops):
            value = _check_mops(op)
            self.writes[n] = ext_writes(value)
            if txns.ok[n]:
                self.reads[n] = ext_reads(value)
            if len(value) > 1:
                keys = [m[1] for m in value]
                if len(set(keys)) != len(keys):
                    _note_intermediate(op, intermediate)
                    if txns.ok[n]:
                        case = internal_case(op)
                        if case:
                            internal.append(case)
                        lost.add(n, op, value)
        g1a = []
        if failed or intermediate:
            for n, op in enumerate(txns.ops):
                if not txns.ok[n]:
                    continue
                for mop in op.get("value") or ():
                    f, k, v = mop
                    if f != "r":
                        continue
                    writer = failed.get(k, {}).get(v)
                    if writer is not None:
                        g1a.append({"op": txns.index[n], "mop": list(mop), "writer": writer})
                    writer = intermediate.get(k, {}).get(v)
                    if writer is not None and writer != txns.index[n]:
                        g1b.append({"op": txns.index[n], "mop": list(mop), "writer": writer})
        for name, cases in (("internal", internal), ("G1a", g1a), ("G1b", g1b),
                            ("lost-update", lost.cases())):
            if cases:
                self.anomalies[name] = cases

    def _wr_edges(self) -> None:
        txns = self.txns
        writers: dict[Any, dict[Any, list[int]]] = {}
        readers: dict[Any, dict[Any, list[int]]] = {}
        for n in range(len(txns)):
            if txns.ok[n]:
                for k, v in self.writes[n].items():
                    writers.setdefault(k, {}).setdefault(v, []).append(n)
                for k, v in self.reads[n].items():
                    readers.setdefault(k, {}).setdefault(v, []).append(n)
        link = self.graph.link
        for k, by_value in readers.items():
            for v, rs in by_value.items():
                ws = writers.get(k, {}).get(v, ())
                if len(ws) > 1:
                    raise DuplicateWrites(
                        f"key {k!r} had value {v!r} written by more than one transaction "
                        f"(ops {', '.join(str(txns.index[w]) for w in ws)}): the rw-register "
                        f"checker needs unique writes")
                for w in ws:
                    for r in rs:
                        link(w, r, WR)
        self._writers, self._readers = writers, readers

    # -- version graph sources -----------------------------------------------------------

    def _initial_state(self) -> dict:
        graphs: dict = {}
        for n in range(len(self.txns)):
            for kvs in (self.writes[n], self.reads[n]):
                for k, v in kvs.items():
                    if v is not None:
                        graphs.setdefault(k, set()).add((NIL, v))
        return graphs

    def _wfr(self) -> dict:
        graphs: dict = {}
        for n in range(len(self.txns)):
            writes = self.writes[n]
            for k, v in self.reads[n].items():
                if v is not None and k in writes and writes[k] != v:
                    graphs.setdefault(k, set()).add((v, _node(writes[k])))
        return graphs

    def _touched(self, n: int) -> set:
        return self.reads[n].keys() | self.writes[n].keys()

    def _final(self, n: int, k):
        if self.txns.ok[n]:
            w = self.writes[n].get(k)
            return w if w is not None else self.reads[n].get(k)
        return self.writes[n].get(k, _NONE)

    def _first(self, n: int, k):
        if self.txns.ok[n]:
            r = self.reads[n].get(k)
            return r if r is not None else self.writes[n].get(k)
        return self.writes[n].get(k, _NONE)

    def _sequential(self) -> dict:
        """Per process, each key's final value in one transaction precedes its first value
        in the next transaction of that process touching the key."""
        graphs: dict = {}
        last: dict = {}
        for n in range(len(self.txns)):
            p = self.txns.process[n]
            if not self.txns.ok[n] or p is None:
                continue
            seen = last.setdefault(p, {})
            for k in self._touched(n):
                prev = seen.get(k)
                if prev is not None:
                    self._relate(graphs, k, prev, n)
                seen[k] = n
        return graphs

    def _linearizable(self) -> dict:
        """Along real-time order: a key's final value in a transaction precedes its first
        value in each next transaction touching it: those reachable through Elle's
        transitive reduction of real-time order without passing another transaction that
        touches the key. Per key, one backward pass over the key's lifetime (node ids are
        completion order, so edges point to higher ids), with the reachable first
        touchers as a bitset."""
        succ: dict[int, list[int]] = {}
        for a, b in realtime_reduction(self.txns.events):
            succ.setdefault(a, []).append(b)
        touching: dict = {}
        for n in range(len(self.txns)):
            for k in (self._touched(n) if self.txns.ok[n] else self.writes[n].keys()):
                touching.setdefault(k, []).append(n)
        graphs: dict = {}
        for k, nodes in touching.items():
            if len(nodes) < 2:
                continue
            lo, hi = nodes[0], nodes[-1]
            bit = {x: 1 << i for i, x in enumerate(nodes)}
            first: dict[int, int] = {}
            for x in range(hi - 1, lo - 1, -1):
                reach = 0
                for s in succ.get(x, ()):
                    if s <= hi:
                        b = bit.get(s)
                        reach |= b if b is not None else first.get(s, 0)
                if reach:
                    first[x] = reach
            for a in nodes:
                reach = first.get(a, 0)
                while reach:
                    low = reach & -reach
                    self._relate(graphs, k, a, nodes[low.bit_length() - 1])
                    reach ^= low
        return graphs

    def _commit_order(self, order: dict) -> dict:
        """A commit order from the database: per key, its writes in that order."""
        position = {str(idx): p for idx, p in order.items()}
        ranked = sorted((position[str(self.txns.index[n])], n) for n in range(len(self.txns))
                        if str(self.txns.index[n]) in position)
        graphs: dict = {}
        last: dict = {}
        for _, n in ranked:
            for k, v in self.writes[n].items():
                if k in last and last[k] != v:
                    graphs.setdefault(k, set()).add((_node(last[k]), _node(v)))
                last[k] = v
        return graphs

    def _relate(self, graphs: dict, k, a: int, b: int) -> None:
        v1, v2 = self._final(a, k), self._first(b, k)
        if v1 is not _NONE and v2 is not _NONE and v1 != v2:
            graphs.setdefault(k, set()).add((_node(v1), _node(v2)))

    def _version_graphs(self, sources) -> tuple[dict, list[str]]:
        accepted: dict[Any, nx.DiGraph] = {}
        used: list[str] = []
        cyclic = []
        for name, source in sources:
            new = source()
            trial = {k: accepted[k].copy() if k in accepted else nx.DiGraph() for k in new}
            cycles = []
            for k, edges in new.items():
                trial[k].add_edges_from(edges)
                for scc in nx.strongly_connected_components(trial[k]):
                    if len(scc) > 1:
                        cycles.append({"key": k, "scc": _sorted_values(_value(v) for v in scc),
                                       "sources": used + [name]})
            if cycles:
                cyclic.extend(sorted(cycles, key=lambda c: (repr(c["key"]), _value_key(c["scc"][0]))))
                continue
            accepted.update(trial)
            used.append(name)
        if cyclic:
            self.anomalies["cyclic-versions"] = cyclic
        return accepted, used

    def _version_edges(self) -> None:
        link = self.graph.link
        for k, g in self.versions.items():
            writers, readers = self._writers.get(k, {}), self._readers.get(k, {})
            for v1, v2 in g.edges:
                v1, v2 = _value(v1), _value(v2)
                later = writers.get(v2)
                if not later:
                    continue
                for a in writers.get(v1, ()):
                    for b in later:
                        link(a, b, WW)
                for a in readers.get(v1, ()):
                    for b in later:
                        link(a, b, RW)

    # -- explanations --------------------------------------------------------------------

    def explain(self, a: int, b: int, rel: int) -> dict:
        if rel == WR:
            reads = self.reads[b]
            for k, v in self.writes[a].items():
                if k in reads and reads[k] == v:
                    return {"type": "wr", "key": k, "value": v}
        else:
            mine = self.writes[a] if rel == WW else self.reads[a]
            theirs = self.writes[b]
            for k, v in mine.items():
                g = self.versions.get(k)
                if k in theirs and g is not None and g.has_edge(_node(v), _node(theirs[k])):
                    return {"type": "ww" if rel == WW else "rw", "key": k, "value": v,
                            "value'": theirs[k]}
        raise AssertionError(f"no {rel} dependency from node {a} to node {b}")

    def step_text(self, step: dict, a: str, b: str) -> str:
        k, v, after = step["key"], _nil(step["value"]), _nil(step.get("value'"))
        why = f"(version order of {k} from: {', '.join(self.sources)})"
        if step["type"] == "wr":
            return f"{a} wrote {k} = {v}, and {b} read {k} = {v}, so {b} saw {a}'s write"
        if step["type"] == "ww":
            return (f"{a} wrote {k} = {v}, and {b} wrote {k} = {after}, which comes right after "
                    f"{v} {why}")
        return (f"{a} read {k} = {v}, and {b} wrote {k} = {after}, the version after {v} {why}: "
                f"{a} did not see {b}'s write")


def _nil(v) -> str:
    return "nil" if v is None else str(v)


def _value_key(v):
    return (v is not None, repr(type(v)), v if isinstance(v, (int, float, str)) else repr(v))


def _sorted_values(values) -> list:
    return sorted(values, key=_value_key)


def _check_mops(op: dict) -> list:
    value = op.get("value") or []
    for mop in value:
        if not isinstance(mop, (list, tuple)) or len(mop) != 3 or mop[0] not in ("r", "w"):
            raise HistoryError(f"op {op.get('index')}: rw-register micro-ops are [\"r\", k, v] and "
                               f"[\"w\", k, v], got {mop!r}")
    return value


def _note_intermediate(op: dict, intermediate: dict) -> None:
    last: dict = {}
    for f, k, v in op.get("value") or ():
        if f == "w":
            if k in last:
                intermediate.setdefault(k, {})[last[k]] = op.get("index")
            last[k] = v


def internal_case(op: dict) -> dict | None:
    """A read that disagrees with the transaction's own earlier write or read of the key."""
    state: dict = {}
    for mop in op.get("value") or ():
        f, k, v = mop
        if f == "w":
            state[k] = v
        else:
            s = state.get(k)
            if s is not None and s != v:
                return {"op": op.get("index"), "mop": list(mop), "expected": s}
            state[k] = v
    return None
