"""The transaction dependency graph: integer nodes, one bitmask of relations per edge.

Inference appends edges to compact arrays (4 bytes per endpoint), because a million
transactions carry tens of millions of dependencies and a dict per edge would not fit.
Strongly connected components come from scipy's C implementation, for the whole graph
and again inside each cyclic component; the typed cycle search then walks adjacency
lists of that component only. (networkx held the components at first: building its
graphs took longer than the whole search on histories with many anomalies, so the
components are kept as arrays; see search.py.)

Real-time order is an interval order; for the whole-graph pass it is encoded through
"point" nodes instead of Elle's transitive reduction: each completion links to the next
point, points form a chain, and each invocation hangs off the latest point, so b is
reachable from a exactly when a completed before b was invoked, with at most three edges
per transaction instead of one per concurrent transaction. Inside a component the direct
real-time edges (Elle's reduction, restricted to the component) are rebuilt, because a
cycle must be explained transaction to transaction.
"""
from __future__ import annotations

from array import array

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

WW, WR, RW, PROCESS, REALTIME = 1, 2, 4, 8, 16
REL_NAMES = {WW: "ww", WR: "wr", RW: "rw", PROCESS: "process", REALTIME: "realtime"}


class DependencyGraph:
    """Edges between transaction nodes 0..n-1, appended as (src, dst, relation bit)."""

    def __init__(self, n: int):
        self.n = n
        self.src = array("i")
        self.dst = array("i")
        self.rel = array("B")

    def link(self, a: int, b: int, rel: int) -> None:
        if a != b:
            self.src.append(a)
            self.dst.append(b)
            self.rel.append(rel)

    def __len__(self) -> int:
        return len(self.src)


def process_edges(txns, graph: DependencyGraph) -> None:
    """Each process's ok transactions in order (Elle leaves crashed ones out)."""
    last: dict = {}
    for n, (p, ok) in enumerate(zip(txns.process, txns.ok)):
        if ok and p is not None:
            prev = last.get(p)
            if prev is not None:
                graph.link(prev, n, PROCESS)
            last[p] = n


def realtime_reduction(events) -> list[tuple[int, int]]:
    """Elle's transitive reduction of real-time order over an event sequence (`~n` is the
    invocation of n, `n` the completion of ok node n): a completion links to every later
    invocation until some transaction that itself follows it completes."""
    buffer: set[int] = set()
    preds: dict[int, tuple[int, ...]] = {}
    edges = []
    for e in events:
        if e < 0:
            b = ~e
            if buffer:
                preds[b] = tuple(buffer)
                edges.extend((a, b) for a in buffer)
        else:
            buffer.difference_update(preds.pop(e, ()))
            buffer.add(e)
    return edges


def _realtime_point_edges(events, n: int) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """The point-node encoding of real-time order (see module doc). Returns (src, dst,
    number of points, whether any real-time edge exists at all).

    Walking the events: completions pile up until the next invocation, which makes a new
    point when any did (each of them links to it, the previous point links to it too);
    every invocation hangs off the latest point. Computed with array operations."""
    ev = np.frombuffer(events, dtype=np.int32) if len(events) else np.zeros(0, np.int32)
    inv_at = np.flatnonzero(ev < 0)
    completions_before = np.cumsum(ev >= 0)[inv_at]         # completions up to each invocation
    new_point = completions_before > np.r_[0, completions_before[:-1]]
    latest = np.cumsum(new_point) - 1                      # -1: no point yet
    points = int(new_point.sum())
    hung = latest >= 0
    inv_src = n + latest[hung]
    inv_dst = ~ev[inv_at[hung]]
    chain = np.arange(n, n + points - 1) if points > 1 else np.zeros(0, np.int64)
    comp_at = np.flatnonzero(ev >= 0)
    next_inv = np.searchsorted(inv_at, comp_at)
    linked = next_inv < len(inv_at)
    comp_src = ev[comp_at[linked]]
    comp_dst = n + latest[next_inv[linked]]
    src = np.concatenate([chain, comp_src, inv_src]).astype(np.int32)
    dst = np.concatenate([chain + 1, comp_dst, inv_dst]).astype(np.int32)
    return src, dst, points, bool(hung.any())


class Components:
    """The nontrivial strongly connected components of a dependency graph."""

    def __init__(self, graph: DependencyGraph, events=None):
        n = graph.n
        src = np.frombuffer(graph.src, dtype=np.int32)
        dst = np.frombuffer(graph.dst, dtype=np.int32)
        self.has_edges = len(src) > 0
        self.members: list[np.ndarray] = []
        self.component_of = np.full(n, -1, dtype=np.int32)
        self._src, self._dst = src, dst
        self._rel = np.frombuffer(graph.rel, dtype=np.uint8)
        self._events = events
        if events is not None:
            rs, rd, points, any_rt = _realtime_point_edges(events, n)
            self.has_edges = self.has_edges or any_rt
            if not self.has_edges:
                return
            # Temporaries die inside the call: peak memory counts at a million txns.
            matrix = _matrix(n + points, np.concatenate([src, rs]), np.concatenate([dst, rd]))
            del rs, rd
        elif self.has_edges:
            matrix = _matrix(n, src, dst)
        else:
            return
        labels = connected_components(matrix, directed=True, connection="strong")[1][:n]
        del matrix
        sizes = np.bincount(labels)
        big = np.flatnonzero(sizes[labels] > 1)
        if len(big) == 0:
            return
        # Number the cyclic components 0..k-1 in order of their first transaction.
        order, first = np.unique(labels[big], return_index=True)
        rank = np.empty(len(order), dtype=np.int64)
        rank[np.argsort(big[first], kind="stable")] = np.arange(len(order))
        lookup = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
        lookup[order] = rank
        comp = lookup[labels[big]]
        self.component_of[big] = comp
        by_comp = np.argsort(comp, kind="stable")
        bounds = np.searchsorted(comp[by_comp], np.arange(len(order) + 1))
        self.members = [big[by_comp[bounds[c]:bounds[c + 1]]] for c in range(len(order))]

    def __len__(self) -> int:
        return len(self.members)

    def cyclic(self) -> "CyclicGraphs":
        """The cyclic components as one CyclicGraphs, with the direct real-time edges among
        each component's members (Elle's reduction restricted to them) when order is
        real-time."""
        comp = self.component_of
        nodes = np.concatenate(self.members) if self.members else np.zeros(0, dtype=np.int64)
        position = np.full(len(comp), -1, dtype=np.int64)
        position[nodes] = np.arange(len(nodes))
        cs, cd = comp[self._src], comp[self._dst]
        keep = np.flatnonzero((cs >= 0) & (cs == cd))
        a, b, m = position[self._src[keep]], position[self._dst[keep]], self._rel[keep]
        if self._events is not None and self.members:
            ev = np.frombuffer(self._events, dtype=np.int32)
            of = comp[np.where(ev >= 0, ev, ~ev)]
            inside = np.flatnonzero(of >= 0)
            inside = inside[np.argsort(of[inside], kind="stable")]
            cuts = np.searchsorted(of[inside], np.arange(1, len(self.members)))
            rt = [edge for events in np.split(ev[inside], cuts)
                  for edge in realtime_reduction(events.tolist())]
            if rt:
                rt_arr = position[np.array(rt, dtype=np.int64)]
                a = np.concatenate([a, rt_arr[:, 0]])
                b = np.concatenate([b, rt_arr[:, 1]])
                m = np.concatenate([m, np.full(len(rt), REALTIME, dtype=np.uint8)])
        return CyclicGraphs(nodes, np.cumsum([0] + [len(x) for x in self.members]), a, b, m)


class CyclicGraphs:
    """All cyclic components as one graph over positions 0..N-1, so that whole-graph
    operations (SCCs of a subgraph, say) run once in C for all components. Component c
    holds positions bounds[c]..bounds[c+1]-1 (its transactions `nodes`, ascending) and
    the edges ebounds[c]..ebounds[c+1]-1, one per ordered pair, sorted by source then
    target, `mask` the relations each carries."""

    def __init__(self, nodes: np.ndarray, bounds, a: np.ndarray, b: np.ndarray, m: np.ndarray):
        self.nodes = nodes
        self.bounds = np.asarray(bounds, dtype=np.int64)
        total = len(nodes)
        key = a.astype(np.int64) * max(total, 1) + b
        order = np.argsort(key, kind="stable")
        key, m = key[order], m[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else key
        self.mask = (np.bitwise_or.reduceat(m, starts) if len(m) else m).astype(np.uint8)
        key = key[starts]
        self.src = (key // max(total, 1)).astype(np.int64)
        self.dst = (key % max(total, 1)).astype(np.int64)
        self.ebounds = np.searchsorted(self.src, self.bounds)

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def parts(self, src: np.ndarray, dst: np.ndarray, loops=()) -> dict[int, list[list[int]]]:
        """The nontrivial strongly connected components of the subgraph with these edges
        (positions), by component, as lists of local ids (ascending) in order of their
        first one. Positions in `loops` (self-edges) count as components of their own."""
        found: dict[int, list[list[int]]] = {}
        if len(src):
            labels = scc_labels(len(self.nodes), src, dst)
            sizes = np.bincount(labels)
            idx = np.flatnonzero(sizes[labels] > 1)
            idx = idx[np.argsort(labels[idx], kind="stable")]
            cuts = np.flatnonzero(np.diff(labels[idx])) + 1
            for group in np.split(idx, cuts) if len(idx) else ():
                c = int(np.searchsorted(self.bounds, group[0], side="right")) - 1
                found.setdefault(c, []).append((group - self.bounds[c]).tolist())
        for v in loops:
            c = int(np.searchsorted(self.bounds, v, side="right")) - 1
            local = int(v - self.bounds[c])
            if not any(local in part for part in found.get(c, ())):
                found.setdefault(c, []).append([local])
        for groups in found.values():
            groups.sort(key=lambda g: g[0])
        return found


def _matrix(n: int, src: np.ndarray, dst: np.ndarray) -> csr_matrix:
    # float64 data: scipy's csgraph would convert to it anyway, copying the matrix.
    return csr_matrix((np.ones(len(src), dtype=np.float64), (src, dst)), shape=(n, n))


def scc_labels(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Strongly connected component label per node 0..n-1 (scipy's C implementation)."""
    return connected_components(_matrix(n, src, dst), directed=True, connection="strong")[1]
