"""Whether a network fault's iptables rules really act: probe datagrams over a faulted link.

The rules being loaded proves little: an address the peer does not send from, a chain the
packets never reach, an iptables that is not the one the kernel uses, and the fault does
nothing while the history says it did. So after the rules land, each node that holds rules
gets UDP datagrams over one of its faulted links, sent on the sending node from whatever
address its routing picks (as its real traffic is), and its own rule for that link must
count them:

- partition and loss drop on the receiver (INPUT, by source address);
- delay (NFQUEUE) and duplication (TEE) act on the sender (OUTPUT / POSTROUTING, by
  destination address).

A rule that acts with probability P (loss, duplication) gets enough datagrams that one
is counted but for a chance of e**-12. UDP, because a datagram needs no handshake that the
fault itself could stop; the datagrams go to the discard port, where nothing listens.
Packets of the target's own on the link count too: they show the rule acts as well.
"""
from __future__ import annotations

import ipaddress
import math
import socket
import time

from .firewall import IPTABLES_WAIT, on_each_node

DISCARD_PORT = 9
PROBES = 3              # datagrams for a rule that acts on every packet
MAX_PROBES = 3000
EXPECTED_COUNTS = 12    # counts expected for a probabilistic rule: P(none) = e**-12
SETTLE = 2.0            # seconds the kernel may take to count a datagram sent on another node
_SEND = ("import socket, sys\n"
         "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
         "for _ in range(int(sys.argv[3])):\n"
         "    s.sendto(b'tectonic probe', (sys.argv[1], int(sys.argv[2])))\n")
RECEIVER, SENDER = "receiver", "sender"  # which end of a link holds the rule


def check_rules(nodes: list, links: dict[str, list[str]], chain: str, *, verb: str,
                holder: str = RECEIVER, table: str = "filter",
                probability: float = 1.0) -> dict[str, str]:
    """{node: what was seen} for each node of `links` (node -> the peers its rules
    cover: the sources it drops, or the destinations it delays or copies to), probed on
    its link with its first peer: "drops packets from n2 (probed with 3 datagrams: 5
    counted)", "no effect: ..." when the rule counted none, "not checked: ..." when no
    probe could be sent or the probability is too small to show."""
    count = PROBES if probability >= 1 else math.ceil(EXPECTED_COUNTS / probability)
    if count > MAX_PROBES:
        why = f"not checked: a probability of {probability} shows in too few of {MAX_PROBES} probes"
        return {name: why for name, peers in links.items() if peers}
    by_name = {n.name: n for n in nodes}
    holders = [n for n in nodes if links.get(n.name)]
    seen = on_each_node(holders, lambda node: _probe(
        node, by_name[links[node.name][0]], chain, verb, holder, table, count))
    return {node.name: what for node, what in zip(holders, seen)}


def _probe(node, peer, chain, verb, holder, table, count) -> str:
    sender, receiver = (peer, node) if holder == RECEIVER else (node, peer)
    other = _ip(peer.address)
    column = SOURCE if holder == RECEIVER else DESTINATION
    before = rule_counts(node, chain, table, column).get(other, 0)
    sent = sender.remote.exec([sender.python, "-c", _SEND, receiver.address, str(DISCARD_PORT),
                               str(count)], timeout=10, check=False)
    if sent.returncode != 0:
        why = (sent.stderr or "").strip().splitlines()
        return (f"not checked: {sender.name} could not send a probe datagram"
                f"{': ' + why[-1] if why else ''}")
    deadline = time.monotonic() + SETTLE
    while True:
        counted = rule_counts(node, chain, table, column).get(other, 0) - before
        if counted > 0 or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    link = f"from {peer.name}" if holder == RECEIVER else f"to {peer.name}"
    if counted <= 0:
        return (f"no effect: {count} probe datagrams {sender.name} -> {receiver.name} "
                f"({other} as the rule on {node.name} names it) were not counted by its rule")
    return f"{verb} packets {link} (probed with {count} datagrams: {counted} counted)"


def _ip(address: str) -> str:
    """address as iptables lists it: an IP address (a host name resolved as the rules were)."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return socket.gethostbyname(address)


SOURCE, DESTINATION = 7, 8  # columns of `iptables -L -v -x -n`
ACTING_TARGETS = frozenset({"DROP", "NFQUEUE", "TEE"})


def rule_counts(node, chain: str, table: str = "filter", column: int = SOURCE) -> dict[str, int]:
    """address -> packets the chain's rules for it have counted on node."""
    out = node.remote.exec(["iptables", "-w", IPTABLES_WAIT, "-t", table, "-L", chain,
                            "-v", "-x", "-n"], check=False).stdout
    return parse_counts(out, column)


def parse_counts(listing: str, column: int = SOURCE) -> dict[str, int]:
    """From `iptables -L CHAIN -v -x -n`: the packet count of each rule that acts (drops,
    queues, copies), by source (or destination) address, a /32 shown bare."""
    counts: dict[str, int] = {}
    for line in listing.splitlines()[2:]:
        fields = line.split()
        if len(fields) > column and fields[2] in ACTING_TARGETS and fields[0].isdigit():
            address = fields[column].removesuffix("/32")
            counts[address] = counts.get(address, 0) + int(fields[0])
    return counts


def require_effect(what: str, result: dict) -> None:
    """Raise FaultWithoutEffect (carrying result, for the history) when a node in
    result["observed"] saw no effect; `what` names the fault, e.g. "partition halves"."""
    from .observe import FaultWithoutEffect
    prefix = "no effect: "
    failed = [f"{name}: {seen[len(prefix):]}" for name, seen in result.get("observed", {}).items()
              if seen.startswith(prefix)]
    if failed:
        raise FaultWithoutEffect(f"{what} had no effect on {failed[0]}", result)
