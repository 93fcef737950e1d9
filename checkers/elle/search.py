"""Typed cycle search inside one strongly connected component.

Each edge is explained by one relation: the first of the workload's explainers that can
explain it (Elle's order: ww, wr, rw for list-append; wr, ww, rw for registers), then
process or real-time order. A cycle's name follows from the relations on it (Adya):
only ww is G0; ww and wr is G1c; exactly one rw is G-single-item; several rw, never two
adjacent, is G-nonadjacent-item; two adjacent rw is G2-item; any real-time edge adds
`-realtime`, else any process edge adds `-process`.

The search for one kind is a breadth-first search over (transaction, automaton state):
the automaton counts rw edges, remembers whether the last edge was rw (and the first, for
the wrap-around), and whether a wr / process / real-time edge was seen. The first return
to the start in an accepting state is the shortest such cycle through that start. Starts
are the heads of the edges every such cycle must contain (rw, wr, or the variant's order),
and a start that closes no cycle is dropped for the later starts of the same kind.

Before searching, cheap existence checks (Elle's cycle-exists specs) find for each model
whether the subgraph it must keep acyclic has a cycle at all; kinds that no such subgraph
allows are never searched. A time budget per component turns an unfinished search into
`cycle-search-timeout` plus "some cycle" found by depth-first search.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix

from . import models
from .graph import PROCESS, REALTIME, REL_NAMES, RW, WR, WW, scc_labels

ALL_RELS = WW | WR | RW | PROCESS | REALTIME


class SearchTimeout(Exception):
    pass


@dataclass(frozen=True)
class CycleSpec:
    name: str
    allowed: int        # labels the cycle may use
    rw: str             # "none", "single", "nonadjacent", "adjacent"
    needs_wr: bool
    variant: int        # PROCESS / REALTIME edge the cycle must contain, or 0


def _specs() -> list[CycleSpec]:
    base = [("G0", WW, "none", False), ("G1c", WW | WR, "none", True),
            ("G-single-item", WW | WR | RW, "single", False),
            ("G-nonadjacent-item", WW | WR | RW, "nonadjacent", False),
            ("G2-item", WW | WR | RW, "adjacent", False)]
    specs = []
    for suffix, extra in (("", 0), ("-process", PROCESS), ("-realtime", REALTIME)):
        for name, allowed, rw, needs_wr in base:
            specs.append(CycleSpec(name + suffix, allowed | extra, rw, needs_wr, extra))
    return sorted(specs, key=lambda s: models.severity_order(s.name))


CYCLE_SPECS = _specs()
CYCLE_TYPES = frozenset(s.name for s in CYCLE_SPECS)

# (model, anomaly type, friendly model, subgraph): ("union", rels) or ("ext", first, then)
# where an extension edge is an edge of `first` optionally followed by one edge of `then`:
# a cycle there is a cycle whose `then` edges are never adjacent.
CYCLE_EXISTS_SPECS = [
    ("PL-1", "read-uncommitted", ("union", WW)),
    ("PL-2", "read-committed", ("union", WW | WR)),
    ("PL-SI", "snapshot-isolation", ("ext", WW | WR, RW)),
    ("PL-2.99", "repeatable-read", ("union", WW | WR | RW)),
    ("PL-3", "serializable", ("union", WW | WR | RW)),
    ("strong-session-PL-1", "strong-session-read-uncommitted", ("union", WW | PROCESS)),
    ("strong-session-PL-2", "strong-session-read-committed", ("union", WW | WR | PROCESS)),
    ("strong-session-snapshot-isolation", "strong-session-snapshot-isolation",
     ("ext", WW | WR | PROCESS, RW)),
    ("strong-session-serializable", "strong-session-serializable",
     ("union", WW | WR | RW | PROCESS)),
    ("strong-PL-1", "strong-read-uncommitted", ("union", WW | REALTIME)),
    ("strong-PL-2", "strong-read-committed", ("union", WW | WR | REALTIME)),
    ("strong-snapshot-isolation", "strong-snapshot-isolation", ("ext", WW | WR | REALTIME, RW)),
    ("PL-SS", "strict-serializable", ("union", WW | WR | RW | REALTIME)),
]
CYCLE_EXISTS_MODELS = frozenset(m for _, m, _ in CYCLE_EXISTS_SPECS)


def classify(labels: list[int]) -> str:
    """Elle's name for a cycle with these edge relations (in cycle order)."""
    rw = labels.count(RW)
    if rw == 1:
        base = "G-single-item"
    elif rw > 1:
        adjacent = any(a == RW and b == RW for a, b in zip(labels, labels[1:] + labels[:1]))
        base = "G2-item" if adjacent else "G-nonadjacent-item"
    elif WR in labels:
        base = "G1c"
    elif WW in labels:
        base = "G0"
    else:
        raise ValueError(f"a cycle of order edges only cannot exist: {labels}")
    if REALTIME in labels:
        return base + "-realtime"
    if PROCESS in labels:
        return base + "-process"
    return base


@dataclass
class Cycle:
    type: str
    nodes: list[int]        # closed: nodes[0] == nodes[-1]
    labels: list[int]       # labels[i] explains nodes[i] -> nodes[i+1]


@dataclass
class ComponentResult:
    cycles: list[Cycle] = field(default_factory=list)
    exists: list[dict] = field(default_factory=list)      # cycle-exists anomalies
    timeout: dict | None = None


def edge_labels(mask: np.ndarray, explain_order: tuple[int, ...]) -> np.ndarray:
    """The one relation each edge is explained by: the first in the explainers' order."""
    label = np.zeros_like(mask)
    for r in reversed(explain_order + (PROCESS, REALTIME)):
        label = np.where((mask & r) != 0, r, label).astype(np.uint8)
    return label


class Shared:
    """What every component's search needs from the whole set of cyclic components,
    computed once for all of them: edge labels, the cyclic parts of each cycle-exists
    subgraph, and of each subgraph a kind of cycle may use."""

    def __init__(self, cg, explain_order: tuple[int, ...]):
        self.label = edge_labels(cg.mask, explain_order)
        self.exists = [self._exists(cg, spec) for _, _, spec in CYCLE_EXISTS_SPECS]
        self.within = {}
        for allowed in {s.allowed for s in CYCLE_SPECS}:
            sel = (self.label & allowed) != 0
            self.within[allowed] = cg.parts(cg.src[sel], cg.dst[sel])

    @staticmethod
    def _exists(cg, spec) -> dict[int, list[list[int]]]:
        if spec[0] == "union":
            sel = (cg.mask & spec[1]) != 0
            return cg.parts(cg.src[sel], cg.dst[sel])
        _, first, then = spec
        n = len(cg.nodes)
        a = (cg.mask & first) != 0
        b = (cg.mask & then) != 0
        ma = csr_matrix((np.ones(int(a.sum()), dtype=np.int32), (cg.src[a], cg.dst[a])), shape=(n, n))
        mb = csr_matrix((np.ones(int(b.sum()), dtype=np.int32), (cg.src[b], cg.dst[b])), shape=(n, n))
        extended = (ma + ma @ mb).tocsr()
        loops = np.flatnonzero(extended.diagonal())
        extended = extended.tocoo()
        return cg.parts(extended.row, extended.col, loops)


class ComponentSearch:
    """Cycle search over component c of a graph.CyclicGraphs."""

    def __init__(self, cg, c: int, shared: Shared, index: list, order=None):
        """`order(a, b)` says whether transaction a precedes b in the process or real-time
        order the graph carries (PROCESS / REALTIME, or 0); it lets a found cycle take a
        direct order edge where the graph, a transitive reduction, needs many hops."""
        b0, b1 = int(cg.bounds[c]), int(cg.bounds[c + 1])
        e0, e1 = int(cg.ebounds[c]), int(cg.ebounds[c + 1])
        self.c, self.shared = c, shared
        self.nodes: list[int] = cg.nodes[b0:b1].tolist()
        self.index = index
        self.order = order
        self.src, self.dst = cg.src[e0:e1] - b0, cg.dst[e0:e1] - b0
        self.label = shared.label[e0:e1]
        cuts = np.searchsorted(self.src, np.arange(len(self.nodes) + 1)).tolist()
        dl, ll = self.dst.tolist(), self.label.tolist()
        self.succ: list[list[tuple[int, int]]] = [list(zip(dl[x:y], ll[x:y]))
                                                  for x, y in zip(cuts, cuts[1:])]
        self._deadline = 0.0
        self._ticks = 0

    def _label_between(self, a: int, b: int) -> int:
        return next((r for w, r in self.succ[a] if w == b), 0)

    # -- existence ---------------------------------------------------------------------

    def cycle_exists(self) -> list[dict]:
        found, ruled_out = [], set()
        for (model, friendly, spec), parts in zip(CYCLE_EXISTS_SPECS, self.shared.exists):
            if friendly in ruled_out or self.c not in parts:
                continue
            smallest = min(parts[self.c], key=len)
            found.append({"type": f"{model}-cycle-exists", "not": friendly,
                          "subgraph": _subgraph_names(spec), "scc-size": len(smallest),
                          "scc": sorted(self.index[self.nodes[i]] for i in smallest)})
            ruled_out |= models.stronger_models([friendly])
        return found

    # -- typed search --------------------------------------------------------------------

    def search(self, deadline: float) -> ComponentResult:
        """Each kind of cycle, worst first, except kinds implied by one already found and
        kinds the cycle-exists checks rule out."""
        result = ComponentResult()
        result.exists = self.cycle_exists()
        impossible_models = models.stronger_models(c["not"] for c in result.exists)
        possible = CYCLE_EXISTS_MODELS - impossible_models
        redundant = set(CYCLE_TYPES & models.prohibited_by(possible))
        searched: list[str] = []
        self._deadline = deadline
        try:
            for spec in CYCLE_SPECS:
                if spec.name in redundant:
                    continue
                searched.append(spec.name)
                cycle = self._find(spec)
                if cycle is not None:
                    result.cycles.append(cycle)
                    redundant |= models.implied_anomalies([spec.name])
        except SearchTimeout:
            found = {c.type for c in result.cycles}
            result.timeout = {"type": "cycle-search-timeout", "anomaly-spec-type": searched[-1],
                              "does-not-contain": [t for t in searched[:-1] if t not in found],
                              "scc-size": len(self.nodes)}
            result.cycles.append(self.some_cycle())
        return result

    def _tick(self) -> None:
        self._ticks += 1
        if self._ticks & 255 == 1 and time.monotonic() > self._deadline:
            raise SearchTimeout()

    def _find(self, spec: CycleSpec) -> Cycle | None:
        must = RW if spec.rw != "none" else (WR if spec.needs_wr else spec.variant)
        heads = self.dst[self.label == must] if must else None
        for comp in self.shared.within[spec.allowed].get(self.c, ()):
            inside = set(comp)
            if must:
                starts = sorted({v for v in heads.tolist() if v in inside})
            else:
                starts = [comp[0]]
            dead: set[int] = set()
            for s in starts:
                self._tick()
                walk, complete = self._bfs(spec, s, inside, dead)
                if walk is not None:
                    def accept(labels, spec=spec):
                        return (all(r & spec.allowed for r in labels)
                                and classify(labels) == spec.name)
                    nodes, labels = self._shorten(walk[0], walk[1], accept)
                    return _lead_with(self._cycle(nodes, labels), must)
                if complete:
                    dead.add(s)
        return None

    def _bfs(self, spec: CycleSpec, s: int, inside: set, dead: set):
        """Shortest accepted closed walk from s, as (nodes, labels) without the closing
        node. Returns (walk or None, whether the search from s was complete)."""
        # State bits: 1 rw seen once, 2 rw seen twice+, 4 last edge rw, 8 first edge rw,
        # 16 two adjacent rw seen, 32 wr seen, 64 variant edge seen.
        mode, variant, allowed, succ = spec.rw, spec.variant, spec.allowed, self.succ
        start_state = 4 if mode == "nonadjacent" else 0
        parent: dict[tuple[int, int], tuple[int, int, int]] = {}
        queue = deque([(s, start_state, 0)])
        seen = {(s, start_state)}
        while queue:
            v, state, depth = queue.popleft()
            self._tick()
            for w, r in succ[v]:
                if not r & allowed or w not in inside or w in dead:
                    continue
                nxt = self._step(mode, state, r, depth == 0, variant)
                if nxt < 0:
                    continue
                if w == s:
                    if self._accepts(spec, nxt):
                        steps = self._walk(parent, s, start_state, v, state) + [(v, r)]
                        return self._simple(spec, steps), False
                    continue
                key = (w, nxt)
                if key not in seen:
                    seen.add(key)
                    parent[key] = (v, state, r)
                    queue.append((w, nxt, depth + 1))
        return None, True

    @staticmethod
    def _step(mode: str, state: int, r: int, first: bool, variant: int) -> int:
        is_rw = r == RW
        if r == WR:
            state |= 32
        elif r == variant:
            state |= 64
        if mode == "none":
            return state
        if is_rw:
            if mode == "single" and state & 3:
                return -1
            if mode == "nonadjacent" and state & 4:
                return -1
            if mode == "adjacent" and state & 4:
                state |= 16
            state = (state & ~3) | (2 if state & 3 else 1) | 4
            if first:
                state |= 8
        else:
            state &= ~4
        return state

    @staticmethod
    def _accepts(spec: CycleSpec, state: int) -> bool:
        if spec.variant and not state & 64:
            return False
        if spec.rw == "none":
            return not spec.needs_wr or bool(state & 32)
        if spec.rw == "single":
            return bool(state & 1)
        if not state & 2:
            return False
        wrap = bool(state & 4) and bool(state & 8)
        if spec.rw == "nonadjacent":
            return not wrap
        return bool(state & 16) or wrap

    @staticmethod
    def _walk(parent, s, start_state, v, state) -> list[tuple[int, int]]:
        """(node, label of the edge leaving it) from s to v, following parent pointers."""
        steps = []
        while (v, state) != (s, start_state):
            pv, pstate, r = parent[(v, state)]
            steps.append((pv, r))
            v, state = pv, pstate
        steps.reverse()
        return steps

    def _simple(self, spec: CycleSpec, walk: list[tuple[int, int]]):
        """The walk as (nodes, labels) if it visits no transaction twice; else a simple
        cycle of the right kind inside it, if there is one."""
        nodes = [v for v, _ in walk]
        if len(set(nodes)) == len(nodes):
            return nodes, [r for _, r in walk]
        for i, v in enumerate(nodes):
            if v in nodes[i + 1:]:
                j = nodes.index(v, i + 1)
                for part in (walk[i:j], walk[:i] + walk[j:]):
                    labels = [r for _, r in part]
                    if all(r & spec.allowed for r in labels) and classify(labels) == spec.name:
                        found = self._simple(spec, part)
                        if found is not None:
                            return found
                return None
        return None

    def _cycle(self, nodes: list[int], labels: list[int]) -> Cycle:
        closed = [self.nodes[i] for i in nodes]
        return Cycle(classify(labels), closed + closed[:1], labels)

    def _shorten(self, nodes: list[int], labels: list[int], accept, longest: int = 100):
        """Replaces runs of a cycle by one direct order edge where the order allows it and
        the cycle stays acceptable: "T2 completed before T1 began" instead of a chain of
        hops through the order's transitive reduction. Greedy, longest run first."""
        if self.order is None or len(labels) > longest:
            return nodes, labels
        while len(nodes) > 2:
            n, best = len(nodes), None
            for i in range(n):
                for skip in range(n - 1, 1, -1):
                    if best is not None and skip <= best[0]:
                        break
                    j = (i + skip) % n
                    label = (self._label_between(nodes[i], nodes[j])
                             or self.order(self.nodes[nodes[i]], self.nodes[nodes[j]]))
                    if not label:
                        continue
                    new_labels = [label] + [labels[(j + t) % n] for t in range(n - skip)]
                    if accept(new_labels):
                        new_nodes = [nodes[i]] + [nodes[(j + t) % n] for t in range(n - skip)]
                        best = (skip, new_nodes, new_labels)
                        break
            if best is None:
                break
            _, nodes, labels = best
        return nodes, labels

    # -- fallback ------------------------------------------------------------------------

    def some_cycle(self) -> Cycle:
        """A short cycle from the smallest set of relations that has one: the shortest
        cycle through one transaction, found breadth-first (linear time)."""
        for rels in (WW, WW | REALTIME | PROCESS, WW | WR, WW | WR | REALTIME | PROCESS,
                     WW | WR | RW, ALL_RELS):
            sel = (self.label & rels) != 0
            for comp in cyclic_components(len(self.nodes), self.src[sel], self.dst[sel]):
                nodes, labels = self._shortest_cycle(rels, set(comp), comp[0])
                nodes, labels = self._shorten(nodes, labels, lambda labels: True)
                return self._cycle(nodes, labels)
        raise AssertionError("a strongly connected component without a cycle")

    def _shortest_cycle(self, rels: int, inside: set, start: int):
        parent = {start: None}
        queue = deque([start])
        while queue:
            v = queue.popleft()
            for w, r in self.succ[v]:
                if not r & rels:
                    continue
                if w == start:
                    nodes, labels = [v], [r]
                    while parent[nodes[-1]] is not None:
                        u, label = parent[nodes[-1]]
                        nodes.append(u)
                        labels.append(label)
                    return nodes[::-1], labels[::-1]
                if w in inside and w not in parent:
                    parent[w] = (v, r)
                    queue.append(w)
        raise AssertionError("a strongly connected component without a cycle")


def _lead_with(cycle: Cycle, label: int) -> Cycle:
    """The same cycle, rotated to begin with the first of a run of `label` edges (the
    relation the search was anchored on), so it reads from its distinctive dependency."""
    labels, n = cycle.labels, len(cycle.labels)
    runs = [i for i in range(n) if labels[i] == label and labels[i - 1] != label]
    if not label or not runs or runs[0] == 0:
        return cycle
    i = runs[0]
    nodes = cycle.nodes[:-1]
    rotated = nodes[i:] + nodes[:i]
    return Cycle(cycle.type, rotated + rotated[:1], labels[i:] + labels[:i])


def _subgraph_names(spec) -> list:
    def names(rels: int) -> list[str]:
        return [name for bit, name in REL_NAMES.items() if rels & bit]
    if spec[0] == "union":
        return ["union", *names(spec[1])]
    return ["extension", ["union", *names(spec[1])], names(spec[2])[0]]


# Below this many transactions a component's SCCs are found in Python: scipy's call
# overhead is larger than the work.
_SMALL = 48


def cyclic_components(n: int, src: np.ndarray, dst: np.ndarray) -> list[list[int]]:
    """Strongly connected components with more than one node, over local nodes 0..n-1,
    each sorted, in order of their smallest node."""
    if len(src) == 0:
        return []
    if n > _SMALL:
        labels = scc_labels(n, src, dst)
        sizes = np.bincount(labels)
        groups: dict[int, list[int]] = {}
        for v in np.flatnonzero(sizes[labels] > 1).tolist():
            groups.setdefault(int(labels[v]), []).append(v)
        return sorted(groups.values(), key=lambda c: c[0])
    succ: list[list[int]] = [[] for _ in range(n)]
    for a, b in zip(src.tolist(), dst.tolist()):
        succ[a].append(b)
    return [c for c in _tarjan(succ) if len(c) > 1]


def _tarjan(succ: list[list[int]]) -> list[list[int]]:
    """Tarjan's algorithm, iterative (each component sorted, by smallest node)."""
    n = len(succ)
    index = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] >= 0:
            continue
        work = [(root, 0)]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        while work:
            v, i = work[-1]
            edges = succ[v]
            if i < len(edges):
                work[-1] = (v, i + 1)
                w = edges[i]
                if index[w] < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = True
                    work.append((w, 0))
                elif on_stack[w] and index[w] < low[v]:
                    low[v] = index[w]
                continue
            work.pop()
            if work:
                u = work[-1][0]
                if low[v] < low[u]:
                    low[u] = low[v]
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    comp.append(w)
                    if w == v:
                        break
                comp.sort()
                out.append(comp)
    out.sort(key=lambda c: c[0])
    return out
