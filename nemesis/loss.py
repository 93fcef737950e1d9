"""Packet loss: chosen nodes' links lose a random fraction of packets.

iptables' statistic match drops each packet with probability P (the kernel here has no
netem). For every chosen node, packets it receives from the other nodes and packets the
others receive from it are dropped with probability P: whatever travels between a chosen
node and any other node crosses one lossy hop, and traffic between two unchosen nodes or
with the controller is untouched.
"""
from __future__ import annotations

from .choose import allowed_selections, choose_nodes, names
from .firewall import chain_name, on_each_node, remove_chain, set_drops
from .rule_check import check_rules, require_effect
from .start_stop import StartStopFault

START, STOP = "start-loss", "stop-loss"
DEFAULT_PROBABILITY = 0.2


class LossNemesis(StartStopFault):
    """start-loss: value None, a node selection, a list of node names, or
    {"targets": ..., "probability": P}; P defaults to opts["loss_probability"] (0.2).
    The completed value: {"targets", "nodes", "probability", "drops": {node: [peers]},
    "observed": {node: what a probe over one of its lossy links showed (rule_check.py)}}.
    stop-loss: {"healed": [nodes]}."""

    kind = "loss"

    def __init__(self, nodes: list, target, rng, opts: dict):
        self.nodes = list(nodes)
        self.target = target
        self.rng = rng
        self.allowed = allowed_selections("loss", opts)
        self.probability = checked_probability(opts.get("loss_probability", DEFAULT_PROBABILITY))
        self.chain = chain_name("loss", opts)

    def start(self, spec) -> dict:
        probability = self.probability
        if isinstance(spec, dict):
            probability = checked_probability(spec.get("probability", probability))
            spec = spec.get("targets", spec.get("nodes"))
        selection, chosen = choose_nodes(spec, self.nodes, self.target, self.rng, self.allowed)
        lossy = set(names(chosen))
        drops = {}
        for node in self.nodes:
            peers = [n for n in self.nodes
                     if n is not node and (node.name in lossy or n.name in lossy)]
            if peers:
                drops[node.name] = names(peers)
        address = {n.name: n.address for n in self.nodes}
        match = ["-m", "statistic", "--mode", "random", "--probability", f"{probability:.4f}"]
        on_each_node(self.nodes, lambda node: set_drops(
            node, self.chain, [address[p] for p in drops.get(node.name, [])], match))
        result = {"targets": selection, "nodes": names(chosen), "probability": probability,
                  "drops": drops}
        result["observed"] = check_rules(self.nodes, drops, self.chain, verb="drops",
                                         probability=probability)
        require_effect("loss", result)
        return result

    def stop(self) -> dict:
        return {"healed": self._heal()}

    def _heal(self) -> list[str]:
        removed = on_each_node(self.nodes, lambda node: remove_chain(node, self.chain))
        return [node.name for node, had_rules in zip(self.nodes, removed) if had_rules]


def checked_probability(p, kind: str = "loss") -> float:
    """p as the statistic match will hold it, or ValueError naming the fault kind."""
    # Four decimals: what the rule on the nodes holds is exactly what the history says.
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0001 <= p <= 1:
        raise ValueError(f"{kind} probability must be a number from 0.0001 to 1, got {p!r}")
    return round(float(p), 4)
