"""Packet duplication: chosen nodes' links deliver a random fraction of packets twice.

The kernel makes the copies: iptables' TEE target clones a packet and sends the clone to a
gateway on the link, and with the packet's own destination as the gateway the peer gets it
twice. The rule sits in mangle's POSTROUTING, after the delay fault's queue, so duplication
and delay combine. As with loss, whatever travels between a chosen node and any other node
is duplicated with probability P (each sender copies its own packets); traffic between two
unchosen nodes or with the controller is untouched.
"""
from __future__ import annotations

from .choose import allowed_selections, choose_nodes, names
from .firewall import chain_name, checked_address, on_each_node, remove_chain, set_chain
from .loss import checked_probability
from .rule_check import SENDER, check_rules, require_effect
from .start_stop import StartStopFault

START, STOP = "start-duplicate", "stop-duplicate"
DEFAULT_PROBABILITY = 0.2
TABLE, HOOK = "mangle", "POSTROUTING"


class DuplicateNemesis(StartStopFault):
    """start-duplicate: value None, a node selection, a list of node names, or
    {"targets": ..., "probability": P}; P defaults to opts["duplicate_probability"] (0.2).
    The completed value: {"targets", "nodes", "probability", "copies": {sender: [peers]},
    "observed": {sender: what a probe over one of its links showed (rule_check.py)}}.
    stop-duplicate: {"healed": [nodes]}."""

    kind = "duplicate"

    def __init__(self, nodes: list, target, rng, opts: dict):
        self.nodes = list(nodes)
        self.target = target
        self.rng = rng
        self.allowed = allowed_selections("duplicate", opts)
        self.probability = checked_probability(
            opts.get("duplicate_probability", DEFAULT_PROBABILITY), "duplicate")
        self.chain = chain_name("duplicate", opts)

    def start(self, spec) -> dict:
        probability = self.probability
        if isinstance(spec, dict):
            probability = checked_probability(spec.get("probability", probability), "duplicate")
            spec = spec.get("targets", spec.get("nodes"))
        selection, chosen = choose_nodes(spec, self.nodes, self.target, self.rng, self.allowed)
        touched = set(names(chosen))
        copies = {}
        for node in self.nodes:
            peers = [n for n in self.nodes
                     if n is not node and (node.name in touched or n.name in touched)]
            if peers:
                copies[node.name] = names(peers)
        address = {n.name: n.address for n in self.nodes}

        def rules(node):
            return [["-d", checked_address(address[p]), "-m", "statistic", "--mode", "random",
                     "--probability", f"{probability:.4f}", "-j", "TEE",
                     "--gateway", address[p]] for p in copies.get(node.name, [])]

        on_each_node(self.nodes, lambda node: set_chain(node, self.chain, HOOK, rules(node), TABLE))
        result = {"targets": selection, "nodes": names(chosen), "probability": probability,
                  "copies": copies}
        result["observed"] = check_rules(self.nodes, copies, self.chain, verb="copies",
                                         holder=SENDER, table=TABLE, probability=probability)
        require_effect("duplication", result)
        return result

    def stop(self) -> dict:
        removed = on_each_node(self.nodes, lambda node: remove_chain(node, self.chain, TABLE))
        return {"healed": [node.name for node, had in zip(self.nodes, removed) if had]}
