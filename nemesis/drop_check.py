"""Whether a partition's drop rules really drop: a probe datagram from a cut peer.

The rules being loaded proves little: an address the peer does not send from, a chain the
packets never reach, a node whose iptables is another one than the kernel uses, and the
partition cuts nothing while the history says it did. So after the rules land, each node
that should drop a peer's packets gets a few UDP datagrams from that peer (sent on the
peer, from whatever address its routing picks, as its real traffic is), and the node's own
drop rule for the peer must count them. UDP, because a datagram needs no handshake that
the cut itself would stop. The datagrams go to the discard port, where nothing listens:
should one pass, it is answered by nothing but an ICMP error.
"""
from __future__ import annotations

import ipaddress
import socket
import time

from .firewall import IPTABLES_WAIT, on_each_node

DISCARD_PORT = 9
PROBES = 3
SETTLE = 2.0  # seconds the kernel may take to count a datagram sent on another node
_SEND = ("import socket, sys\n"
         "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
         "for _ in range(int(sys.argv[3])):\n"
         "    s.sendto(b'tectonic drop probe', (sys.argv[1], int(sys.argv[2])))\n")


def check_drops(nodes: list, grudge: dict[str, list[str]], chain: str) -> dict[str, str]:
    """{node: what was seen} for each node of the grudge: "drops n2 (probed with 3 datagrams: 3 packets from it dropped)",
    "no effect: ..." when a probe from the peer was not dropped, or "not checked: ..."
    when the peer cannot send one (no python there)."""
    by_name = {n.name: n for n in nodes}
    cut = [n for n in nodes if grudge.get(n.name)]
    seen = on_each_node(cut, lambda node: _probe(node, by_name[grudge[node.name][0]], chain))
    return {node.name: what for node, what in zip(cut, seen)}


def _probe(node, peer, chain: str) -> str:
    source = _ip(peer.address)
    before = dropped_from(node, chain).get(source, 0)
    sent = peer.remote.exec([peer.python, "-c", _SEND, node.address, str(DISCARD_PORT), str(PROBES)],
                            timeout=10, check=False)
    if sent.returncode != 0:
        why = (sent.stderr or "").strip().splitlines()
        return (f"not checked: {peer.name} could not send a probe datagram"
                f"{': ' + why[-1] if why else ''}")
    deadline = time.monotonic() + SETTLE
    while True:
        counted = dropped_from(node, chain).get(source, 0) - before
        if counted >= PROBES or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    if counted <= 0:
        return (f"no effect: {PROBES} probe datagrams from {peer.name} ({peer.address}) "
                f"to {node.name} passed its drop rule uncounted")
    # Counted: the probe, and whatever else the peer sent meanwhile.
    return f"drops {peer.name} (probed with {PROBES} datagrams: {counted} packets from it dropped)"


def _ip(address: str) -> str:
    """address as iptables lists it: an IP address (a host name resolved as the rules were)."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return socket.gethostbyname(address)


def dropped_from(node, chain: str) -> dict[str, int]:
    """source address -> packets the chain's DROP rules for it have counted on node."""
    out = node.remote.exec(["iptables", "-w", IPTABLES_WAIT, "-t", "filter", "-L", chain,
                            "-v", "-x", "-n"], check=False).stdout
    return parse_counts(out)


def parse_counts(listing: str) -> dict[str, int]:
    """From `iptables -L CHAIN -v -x -n`: each DROP rule's packet count by source address
    (a /32 shown bare, as iptables shows it)."""
    counts: dict[str, int] = {}
    for line in listing.splitlines()[2:]:
        fields = line.split()
        if len(fields) >= 8 and fields[2] == "DROP" and fields[0].isdigit():
            source = fields[7].removesuffix("/32")
            counts[source] = counts.get(source, 0) + int(fields[0])
    return counts
