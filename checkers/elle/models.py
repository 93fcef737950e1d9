"""Consistency models, the anomalies each one proscribes, and how anomalies imply each other.

Three small DAGs carry the whole theory (after Elle's consistency-model namespace, which
cites Adya, Bailis et al., Cerone et al., Daudjee & Salem and others):

- MODEL_IMPLIES: `a -> b` when every history satisfying model a also satisfies b;
- PROSCRIBES: the anomalies a model rules out directly (stronger models inherit them);
- ANOMALY_IMPLIES: `a -> b` when finding anomaly a also demonstrates b (a G0 cycle is a
  G1c cycle; a lost update is a G2-item).

From these: which anomalies a set of models forbids (what to look for), and which models a
set of anomalies rules out (`not`: the weakest ones, `also_not`: everything stronger).
Model names are the friendly ones; Adya's PL-* names are accepted as aliases.
"""
from __future__ import annotations

from collections import deque
from functools import lru_cache
from typing import Iterable

MODEL_IMPLIES: dict[str, tuple[str, ...]] = {
    "strict-serializable": ("serializable", "linearizable", "snapshot-isolation",
                            "strong-snapshot-isolation", "strong-session-serializable",
                            "session-serializable"),
    "serializable": ("repeatable-read", "update-serializable", "snapshot-isolation",
                     "view-serializable"),
    "session-serializable": ("1SR",),
    "update-serializable": ("forward-consistent-view",),
    "forward-consistent-view": ("consistent-view",),
    "consistent-view": ("cursor-stability", "monotonic-view"),
    "cursor-stability": ("read-committed",),
    "monotonic-view": ("read-committed",),
    "monotonic-snapshot-read": ("read-committed",),
    "monotonic-atomic-view": ("read-committed",),
    "read-committed": ("read-uncommitted",),
    "repeatable-read": ("cursor-stability", "monotonic-atomic-view"),
    "snapshot-isolation": ("forward-consistent-view", "monotonic-atomic-view",
                           "monotonic-snapshot-read", "parallel-snapshot-isolation", "prefix"),
    "parallel-snapshot-isolation": ("causal-cerone", "ROLA"),
    "prefix": ("causal-cerone",),
    "causal-cerone": ("read-atomic",),
    "ROLA": ("read-atomic", "update-atomic"),
    # Cerone et al.: update atomic is read atomic plus no lost updates.
    "update-atomic": ("read-atomic",),
    "read-atomic": ("monotonic-atomic-view",),
    # Session and real-time strengthenings (Daudjee & Salem; Elle's generalisations).
    "strong-session-serializable": ("serializable", "strong-session-snapshot-isolation"),
    "strong-session-snapshot-isolation": ("snapshot-isolation", "strong-session-read-committed"),
    "strong-snapshot-isolation": ("strong-session-snapshot-isolation", "strong-read-committed"),
    "strong-session-read-committed": ("read-committed", "strong-session-read-uncommitted"),
    "strong-session-read-uncommitted": ("read-uncommitted",),
    "strong-read-committed": ("strong-session-read-committed", "strong-read-uncommitted"),
    "strong-read-uncommitted": ("strong-session-read-uncommitted",),
    # Single-object models, so a boundary reads naturally next to linearizability.
    "linearizable": ("sequential",),
    "sequential": ("causal",),
    "causal": ("writes-follow-reads", "PRAM"),
    "PRAM": ("monotonic-reads", "monotonic-writes", "read-your-writes"),
}

ALIASES: dict[str, str] = {
    "PL-1": "read-uncommitted", "PL-2": "read-committed", "PL-2+": "consistent-view",
    "PL-2.99": "repeatable-read", "PL-2L": "monotonic-view", "PL-3": "serializable",
    "PL-3U": "update-serializable", "PL-CS": "cursor-stability",
    "PL-FCV": "forward-consistent-view", "PL-MSR": "monotonic-snapshot-read",
    "PL-SI": "snapshot-isolation", "PL-SS": "strict-serializable",
    "strong-serializable": "strict-serializable", "conflict-serializable": "serializable",
    "strong-session-PL-1": "strong-session-read-uncommitted",
    "strong-session-PL-2": "strong-session-read-committed",
    "strong-PL-1": "strong-read-uncommitted", "strong-PL-2": "strong-read-committed",
}

PROSCRIBES: dict[str, tuple[str, ...]] = {
    "read-uncommitted": ("G0", "duplicate-elements", "cyclic-versions", "PL-1-cycle-exists"),
    "read-committed": ("G1", "PL-2-cycle-exists"),
    "cursor-stability": ("G1", "G-cursor", "lost-update"),
    "monotonic-view": ("G1", "G-monotonic"),
    "monotonic-snapshot-read": ("G1", "G-MSR"),
    "consistent-view": ("G1", "G-single"),
    "forward-consistent-view": ("G1", "G-SIb"),
    "update-serializable": ("G1", "G-update"),
    "repeatable-read": ("G1", "G2-item", "lost-update", "PL-2.99-cycle-exists"),
    "serializable": ("G1", "G2", "internal", "predicate-read-miss", "PL-3-cycle-exists"),
    # Generalised SI forbids every cycle whose rw edges are never adjacent.
    "snapshot-isolation": ("internal", "G1", "G-SI", "G-nonadjacent", "PL-SI-cycle-exists"),
    "causal-cerone": ("internal", "G1a"),
    "parallel-snapshot-isolation": ("internal", "G1a"),
    "prefix": ("internal", "G1a"),
    # A future read breaks EXT: the read missed the value preceding it in visibility order.
    "read-atomic": ("internal", "G1a", "future-read"),
    "update-atomic": ("lost-update",),
    "strict-serializable": ("G1", "G1c-realtime", "G2-realtime", "PL-SS-cycle-exists"),
    "strong-session-read-uncommitted": ("G0-process", "strong-session-PL-1-cycle-exists"),
    "strong-session-read-committed": ("G1c-process", "strong-session-PL-2-cycle-exists"),
    "strong-read-uncommitted": ("G0-realtime", "strong-PL-1-cycle-exists"),
    "strong-read-committed": ("G1c-realtime", "strong-PL-2-cycle-exists"),
    "strong-session-snapshot-isolation": ("internal", "G1-process", "G-nonadjacent-process",
                                          "strong-session-snapshot-isolation-cycle-exists"),
    "strong-snapshot-isolation": ("internal", "G1-realtime", "G-nonadjacent-realtime",
                                  "strong-snapshot-isolation-cycle-exists"),
    "strong-session-serializable": ("G1-process", "G2-process",
                                    "strong-session-serializable-cycle-exists"),
}

ANOMALY_IMPLIES: dict[str, tuple[str, ...]] = {
    "G0": ("G1c", "G0-process"),
    "G0-process": ("G1c-process", "G0-realtime"),  # processes are single-threaded
    "G0-realtime": ("G1c-realtime",),
    "G1a": ("G1",), "G1b": ("G1",),
    "G1c": ("G1", "G1c-process"),
    "G1c-process": ("G1c-realtime", "G1-process"),
    "G1c-realtime": ("G1-realtime",),
    "G1": ("G1-process",), "G1-process": ("G1-realtime",),
    "G-single-item": ("G-single", "G-single-item-process", "G-nonadjacent-item"),
    "G-single-item-process": ("G-single-process", "G-single-item-realtime",
                              "G-nonadjacent-item-process"),
    "G-single-item-realtime": ("G-single-realtime", "G-nonadjacent-item-realtime"),
    "G-single": ("G-nonadjacent", "GSIb", "G-single-process"),
    "G-single-process": ("G-nonadjacent-process", "G-single-realtime"),
    "G-single-realtime": ("G-nonadjacent-realtime",),
    "G-nonadjacent-item": ("G-nonadjacent", "G2-item", "G-nonadjacent-item-process"),
    "G-nonadjacent-item-process": ("G-nonadjacent-process", "G2-item-process",
                                   "G-nonadjacent-item-realtime"),
    "G-nonadjacent-item-realtime": ("G2-item-realtime", "G-nonadjacent-realtime"),
    "G-nonadjacent": ("G2", "G-nonadjacent-process"),
    "G-nonadjacent-process": ("G2-process", "G-nonadjacent-realtime"),
    "G-nonadjacent-realtime": ("G2-realtime",),
    "G2": ("G2-process",),
    "G2-item": ("G2", "G2-item-process"),
    "G2-item-process": ("G2-process", "G2-item-realtime"),
    "G2-item-realtime": ("G2-realtime",),
    "G2-process": ("G2-realtime",),
    "GSIa": ("GSI",), "GSIb": ("GSI",),
    # Two committed reads that cannot come from one timeline: someone read dirty state.
    "incompatible-order": ("G1a",),
    # A read of the transaction's own later write is a trivial wr cycle.
    "future-read": ("G1c",),
    "dirty-update": ("G1a",),
    # Lost update is a special case of write skew (Bailis), on one item: G2-item.
    "lost-update": ("write-skew", "G2-item"),
    "write-skew": ("G2",),
}

# Not implications, only "usually worse": orders the cycle search so the worst
# anomalies are looked for first.
SEVERITY: dict[str, tuple[str, ...]] = {
    "G0": ("G1c",), "G0-process": ("G1c-process",), "G0-realtime": ("G1c-realtime",),
    "G1c": ("G-single", "G2-item"), "G1c-process": ("G-single-process", "G2-item-process"),
    "G1c-realtime": ("G-single-realtime", "G2-item-realtime"),
    "G2": ("G0-process",), "G2-process": ("G0-realtime",),
}

# Anomalies that make a verdict unknown rather than invalid.
UNKNOWN_ANOMALIES = frozenset({"empty-transaction-graph", "cycle-search-timeout"})


def _inverse(dag: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    inv: dict[str, list[str]] = {}
    for a, bs in dag.items():
        for b in bs:
            inv.setdefault(b, []).append(a)
    return {k: tuple(v) for k, v in inv.items()}


_MODEL_IMPLIED_BY = _inverse(MODEL_IMPLIES)
_PROSCRIBED_BY = _inverse(PROSCRIBES)
_ANOMALY_IMPLIED_BY = _inverse(ANOMALY_IMPLIES)

ALL_MODELS = frozenset(MODEL_IMPLIES) | frozenset(b for bs in MODEL_IMPLIES.values() for b in bs)


def _closure(start: Iterable[str], step: dict[str, tuple[str, ...]]) -> set[str]:
    seen: set[str] = set()
    queue = deque(start)
    while queue:
        x = queue.popleft()
        if x not in seen:
            seen.add(x)
            queue.extend(step.get(x, ()))
    return seen


def canonical(model: str) -> str:
    """The friendly name of a model; raises ValueError naming the known ones if unknown."""
    name = ALIASES.get(model, model)
    if name not in ALL_MODELS:
        raise ValueError(f"unknown consistency model {model!r}; known models: "
                         f"{', '.join(sorted(ALL_MODELS))}")
    return name


def implied_models(models: Iterable[str]) -> set[str]:
    return _closure((canonical(m) for m in models), MODEL_IMPLIES)


def stronger_models(models: Iterable[str]) -> set[str]:
    """The models, and every model that implies one of them (all ruled out with them)."""
    return _closure((canonical(m) for m in models), _MODEL_IMPLIED_BY)


def implied_anomalies(anomalies: Iterable[str]) -> set[str]:
    return _closure(anomalies, ANOMALY_IMPLIES)


def anomalies_implying(anomalies: Iterable[str]) -> set[str]:
    return _closure(anomalies, _ANOMALY_IMPLIED_BY)


@lru_cache(maxsize=256)
def _prohibited(models: frozenset[str]) -> frozenset[str]:
    direct = [a for m in implied_models(models) for a in PROSCRIBES.get(m, ())]
    return frozenset(anomalies_implying(direct))


def prohibited_by(models: Iterable[str]) -> frozenset[str]:
    """Anomalies that cannot be present if all of these models hold."""
    return _prohibited(frozenset(canonical(m) for m in models))


def impossible_models(anomalies: Iterable[str]) -> set[str]:
    """Models ruled out by the presence of these anomalies."""
    direct = [m for a in implied_anomalies(anomalies) for m in _PROSCRIBED_BY.get(a, ())]
    return stronger_models(direct)


def boundary(anomalies: Iterable[str]) -> tuple[list[str], list[str]]:
    """(not, also_not): the weakest models the anomalies rule out, and the stronger rest."""
    impossible = impossible_models(anomalies)
    weakest = sorted(m for m in impossible
                     if not (_closure([m], MODEL_IMPLIES) - {m}) & impossible)
    return weakest, sorted(impossible - set(weakest))


def _depths() -> dict[str, int]:
    """Kahn layering of anomaly implication plus severity: implying anomalies come first."""
    edges: dict[str, set[str]] = {}
    for dag in (ANOMALY_IMPLIES, SEVERITY):
        for a, bs in dag.items():
            edges.setdefault(a, set()).update(bs)
    nodes = set(edges) | {b for bs in edges.values() for b in bs}
    indeg = {n: 0 for n in nodes}
    for bs in edges.values():
        for b in bs:
            indeg[b] += 1
    depth, layer, d = {}, sorted(n for n in nodes if indeg[n] == 0), 0
    while layer:
        nxt = []
        for n in layer:
            depth[n] = d
            for b in edges.get(n, ()):
                indeg[b] -= 1
                if indeg[b] == 0:
                    nxt.append(b)
        layer, d = nxt, d + 1
    return depth


ANOMALY_DEPTH = _depths()


def severity_order(anomaly: str) -> tuple[int, str]:
    """Sort key: anomalies that imply (or are worse than) others first."""
    return ANOMALY_DEPTH.get(anomaly, 0), anomaly
