"""Network partitions: iptables DROP rules inside the nodes, described by a grudge.

A grudge maps a node to the nodes whose packets it drops (Jepsen's term). Rules sit on
INPUT only: a TCP connection needs packets both ways, so one side dropping is enough to
cut it, and a one-sided grudge (majorities-ring on three nodes) stays expressible. The
controller is never in a grudge: clients keep reaching every node, as in Jepsen.

Shapes (after Jepsen's nemesis/combined):
  halves           first half | second half, in cluster order (the smaller half first)
  random-halves    the same after a shuffle
  isolate-one      one random node alone | the rest
  majorities-ring  every node sees a majority, but no two see the same one
  bridge           two halves that only a bridge node in the middle can talk to
  isolate-leader   the target's current leader alone | the rest
One-way shapes (a grudge that is not symmetric; a link fails in one direction only):
  one-way-isolate  one random node's messages reach the rest, theirs never reach it
  one-way-mute     one random node hears the rest, its messages never reach them
  one-way-leader   the leader's messages reach the rest, their answers never reach it
  one-way-bridge   a bridge whose messages reach both halves, while only the first half's
                   reach it (the halves cannot talk)
With TCP a one-way cut stops new connections both ways, but on an established connection
the open direction still delivers what is sent (only the acknowledgements are lost), which
is how a leader whose followers cannot answer keeps sending heartbeats.
"""
from __future__ import annotations

from .choose import current_leader
from .firewall import chain_name, on_each_node, remove_chain, set_drops
from .rule_check import check_rules, require_effect
from .options import name_list
from .start_stop import StartStopFault

START, STOP = "start-partition", "stop-partition"
SHAPES = ("halves", "random-halves", "isolate-one", "majorities-ring", "bridge",
          "isolate-leader", "one-way-isolate", "one-way-mute", "one-way-leader", "one-way-bridge")


def complete_grudge(components: list[list[str]]) -> dict[str, list[str]]:
    """Every node drops every node outside its own component."""
    grudge = {}
    for component in components:
        others = [n for c in components if c is not component for n in c]
        for node in component:
            if others:
                grudge[node] = list(others)
    return grudge


def halves(names: list[str]) -> dict[str, list[str]]:
    cut = len(names) // 2
    return complete_grudge([names[:cut], names[cut:]])


def isolate(names: list[str], lonely: str) -> dict[str, list[str]]:
    return complete_grudge([[lonely], [n for n in names if n != lonely]])


def majorities_ring(names: list[str]) -> dict[str, list[str]]:
    """In ring order, each node sees the nodes up to r places either side of it, with
    r = ceil((majority - 1) / 2): every node sees a majority, no two see the same one, and
    the grudge is symmetric. (Jepsen's window of exactly a majority is one-sided when the
    majority is even; with drops on INPUT a one-sided cut is a full cut for TCP, and the
    node would see less than a majority.) Three nodes cannot form such a ring; they get a
    bridge, the nearest shape where each node still sees a majority."""
    n = len(names)
    if n == 3:
        return bridge(names)
    reach = (n // 2 + 1) // 2
    grudge = {}
    for i, node in enumerate(names):
        near = {names[(i + d) % n] for d in range(-reach, reach + 1)}
        dropped = [x for x in names if x not in near]
        if dropped:
            grudge[node] = dropped
    return grudge


def bridge(names: list[str]) -> dict[str, list[str]]:
    """names[:n//2] and names[n//2+1:] cannot talk; names[n//2] talks to both."""
    cut = len(names) // 2
    left, right = names[:cut], names[cut + 1:]
    return complete_grudge([left, right]) if left and right else {}


def one_way_isolate(names: list[str], deaf: str) -> dict[str, list[str]]:
    """deaf drops everything from the others; they hear deaf."""
    return {deaf: [n for n in names if n != deaf]}


def one_way_mute(names: list[str], mute: str) -> dict[str, list[str]]:
    """Everyone else drops what mute sends; mute hears them."""
    return {n: [mute] for n in names if n != mute}


def one_way_bridge(names: list[str]) -> dict[str, list[str]]:
    """bridge, except that the bridge node also drops what the second half sends: the
    second half hears the bridge, the bridge does not hear it."""
    cut = len(names) // 2
    grudge = bridge(names)
    right = names[cut + 1:]
    if grudge and right:
        grudge[names[cut]] = list(right)
    return grudge


class PartitionNemesis(StartStopFault):
    """start-partition: value None (the rng picks one of opts["partition_shapes"], default
    all), a shape name, {"shape": name} or {"grudge": {...}}; the completed op's value is
    {"shape": ..., "grudge": {...}, "observed": {node: what a probe from a cut peer showed}}
    (rule_check.py; a rule that drops nothing ends the run: FaultWithoutEffect).
    stop-partition heals: {"healed": [nodes]}."""

    kind = "partition"

    def __init__(self, nodes: list, target, rng, opts: dict):
        self.nodes = list(nodes)
        self.target = target
        self.rng = rng
        self.shapes = name_list(opts.get("partition_shapes", SHAPES), SHAPES, "partition_shapes")
        self.chain = chain_name("partition", opts)

    def start(self, spec) -> dict:
        shape, grudge = self.grudge_for(spec)
        address = {n.name: n.address for n in self.nodes}
        on_each_node(self.nodes, lambda node: set_drops(
            node, self.chain, [address[x] for x in grudge.get(node.name, [])]))
        result = {"shape": shape, "grudge": grudge}
        if grudge:
            result["observed"] = check_rules(self.nodes, grudge, self.chain, verb="drops")
            require_effect(f"partition {shape}", result)
        return result

    def grudge_for(self, spec) -> tuple[str, dict[str, list[str]]]:
        """(shape, grudge) for spec, listed in cluster order whatever the shuffle was."""
        names = [n.name for n in self.nodes]
        shape, grudge = self._shape_and_grudge(spec, names)
        return shape, {k: sorted(grudge[k], key=names.index) for k in names if grudge.get(k)}

    def _shape_and_grudge(self, spec, names: list[str]) -> tuple[str, dict[str, list[str]]]:
        if isinstance(spec, dict) and "grudge" in spec:
            return spec.get("shape", "custom"), self._checked_grudge(spec["grudge"], names)
        shape = spec.get("shape") if isinstance(spec, dict) else spec
        if shape is None:
            shape = self.rng.choice(self.shapes)
        if shape not in SHAPES:
            raise ValueError(f"unknown partition shape {shape!r}; known: {', '.join(SHAPES)}")
        if shape == "halves":
            return shape, halves(names)
        if shape == "isolate-one":
            return shape, isolate(names, self.rng.choice(names))
        if shape in ("isolate-leader", "one-way-leader"):
            leader = current_leader(self.target, self.nodes)
            if leader is None:
                return shape, {}  # nothing to isolate; the empty grudge records that
            cut = isolate if shape == "isolate-leader" else one_way_isolate
            return shape, cut(names, leader.name)
        if shape == "one-way-isolate":
            return shape, one_way_isolate(names, self.rng.choice(names))
        if shape == "one-way-mute":
            return shape, one_way_mute(names, self.rng.choice(names))
        shuffled = self.rng.sample(names, len(names))
        return shape, {"random-halves": halves, "majorities-ring": majorities_ring,
                       "bridge": bridge, "one-way-bridge": one_way_bridge}[shape](shuffled)

    def stop(self) -> dict:
        return {"healed": self._heal()}

    def _heal(self) -> list[str]:
        removed = on_each_node(self.nodes, lambda node: remove_chain(node, self.chain))
        return [node.name for node, had_rules in zip(self.nodes, removed) if had_rules]

    @staticmethod
    def _checked_grudge(grudge: dict, names: list[str]) -> dict[str, list[str]]:
        unknown = sorted({n for k, v in grudge.items() for n in [k, *v]} - set(names))
        if unknown:
            raise ValueError(f"grudge names unknown nodes {unknown}; the cluster has {names}")
        return {k: list(v) for k, v in grudge.items() if v}
