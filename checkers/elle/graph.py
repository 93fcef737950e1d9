"""The transaction dependency graph: integer nodes, one bitmask of relations per edge.

Inference appends edges to compact arrays (4 bytes per endpoint), because a million
transactions carry tens of millions of dependencies and a dict per edge would not fit.
Strongly connected components of the whole graph come from scipy's C implementation;
only the components that have cycles are lifted into networkx graphs for the typed cycle
search, where they are small.

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

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

WW, WR, RW, PROCESS, REALTIME = 1, 2, 4, 8, 16
REL_NAMES = {WW: "ww", WR: "wr", RW: "rw", PROCESS: "process", REALTIME: "realtime"}
REL_BITS = {v: k for k, v in REL_NAMES.items()}


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
    number of points, whether any real-time edge exists at all)."""
    src, dst = array("i"), array("i")
    pending: list[int] = []
    point = -1
    points = 0
    any_edge = False
    for e in events:
        if e >= 0:
            pending.append(e)
            continue
        if pending:
            new = n + points
            points += 1
            if point >= 0:
                src.append(point)
                dst.append(new)
            for a in pending:
                src.append(a)
                dst.append(new)
            pending.clear()
            point = new
        if point >= 0:
            src.append(point)
            dst.append(~e)
            any_edge = True
    return np.frombuffer(src, dtype=np.int32), np.frombuffer(dst, dtype=np.int32), points, any_edge


class Components:
    """The nontrivial strongly connected components of a dependency graph."""

    def __init__(self, graph: DependencyGraph, events=None):
        n = graph.n
        src = np.frombuffer(graph.src, dtype=np.int32)
        dst = np.frombuffer(graph.dst, dtype=np.int32)
        self.has_edges = len(src) > 0
        total = n
        if events is not None:
            rs, rd, points, any_rt = _realtime_point_edges(events, n)
            self.has_edges = self.has_edges or any_rt
            total += points
            all_src, all_dst = np.concatenate([src, rs]), np.concatenate([dst, rd])
        else:
            all_src, all_dst = src, dst
        self.members: list[list[int]] = []
        self.component_of = np.full(n, -1, dtype=np.int64)
        if len(all_src) == 0 or n == 0:
            return
        matrix = csr_matrix((np.ones(len(all_src), dtype=np.int8), (all_src, all_dst)),
                            shape=(total, total))
        _, labels = connected_components(matrix, directed=True, connection="strong")
        del matrix
        labels = labels[:n]
        sizes = np.bincount(labels)
        big = np.flatnonzero(sizes[labels] > 1)
        if len(big) == 0:
            return
        # Renumber the cyclic components 0..k-1 in order of their first node.
        order, first = np.unique(labels[big], return_index=True)
        rank = np.argsort(np.argsort(big[first]))
        remap = dict(zip(order.tolist(), rank.tolist()))
        self.members = [[] for _ in order]
        for node, lab in zip(big.tolist(), labels[big].tolist()):
            c = remap[lab]
            self.members[c].append(node)
            self.component_of[node] = c
        self._src, self._dst = src, dst
        self._rel = np.frombuffer(graph.rel, dtype=np.uint8)
        self._events = events

    def __len__(self) -> int:
        return len(self.members)

    def graphs(self) -> list[nx.DiGraph]:
        """One networkx DiGraph per component; edge attribute `m` is the relation bitmask."""
        graphs = [nx.DiGraph() for _ in self.members]
        if not self.members:
            return graphs
        for g, members in zip(graphs, self.members):
            g.add_nodes_from(members)
        comp = self.component_of
        cs, cd = comp[self._src], comp[self._dst]
        keep = np.flatnonzero((cs >= 0) & (cs == cd))
        for a, b, r, c in zip(self._src[keep].tolist(), self._dst[keep].tolist(),
                              self._rel[keep].tolist(), cs[keep].tolist()):
            _add(graphs[c], a, b, r)
        if self._events is not None:
            per_component: list[list[int]] = [[] for _ in self.members]
            for e in self._events:
                c = comp[e if e >= 0 else ~e]
                if c >= 0:
                    per_component[c].append(e)
            for g, events in zip(graphs, per_component):
                for a, b in realtime_reduction(events):
                    _add(g, a, b, REALTIME)
        return graphs


def _add(g: nx.DiGraph, a: int, b: int, rel: int) -> None:
    attrs = g._succ[a].get(b)
    if attrs is None:
        g.add_edge(a, b, m=rel)
    else:
        attrs["m"] |= rel
