"""Which nodes a fault hits: one, a minority, a majority, all, or the leader.

The choice is made with the nemesis's seeded rng, so a seed repeats the same faults on the
same nodes. A caller may instead name the selection, or list the nodes outright.
"""
from __future__ import annotations

from harness.protocols import Primary

from .options import name_list

SELECTIONS = ("one", "minority", "majority", "all", "leader")


def allowed_selections(kind: str, opts: dict) -> list[str]:
    """opts["<kind>_targets"], else opts["targets"], else every selection."""
    key = f"{kind}_targets" if f"{kind}_targets" in opts else "targets"
    return name_list(opts.get(key, SELECTIONS), SELECTIONS, key)


def minority_size(n: int) -> int:
    """Fewer than half, but at least one node, so the fault does something."""
    return max(1, (n - 1) // 2)


def majority_size(n: int) -> int:
    return n // 2 + 1


def choose_nodes(spec, nodes: list, target, rng, allowed: list[str]) -> tuple[str, list]:
    """(selection, chosen nodes in cluster order) for spec: None (the rng picks one of
    `allowed`), a selection name, or a list of node names."""
    if isinstance(spec, list):
        by_name = {n.name: n for n in nodes}
        missing = [name for name in spec if name not in by_name]
        if missing:
            raise ValueError(f"unknown nodes {missing}; the cluster has {sorted(by_name)}")
        return "nodes", [n for n in nodes if n.name in spec]
    selection = rng.choice(allowed) if spec is None else spec
    if selection not in SELECTIONS:
        raise ValueError(f"unknown node selection {selection!r}; "
                         f"expected one of {', '.join(SELECTIONS)} or a list of node names")
    if selection == "leader":
        leader = current_leader(target, nodes)
        chosen = [leader] if leader is not None else []
    elif selection == "all":
        chosen = list(nodes)
    else:
        size = {"one": 1, "minority": minority_size(len(nodes)),
                "majority": majority_size(len(nodes))}[selection]
        chosen = rng.sample(list(nodes), size)
    chosen_names = {c.name for c in chosen}
    return selection, [n for n in nodes if n.name in chosen_names]


def current_leader(target, nodes: list):
    """The target's leader, or None when it has none now or cannot tell."""
    return target.leader(nodes) if isinstance(target, Primary) else None


def names(nodes: list) -> list[str]:
    return [n.name for n in nodes]
