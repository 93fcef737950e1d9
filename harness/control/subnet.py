"""Choosing the private /24 a local cluster lives in.

The subnet is derived from the test id (so a re-run of the same test usually gets the same
addresses, which makes logs comparable), and skipped when it overlaps anything the
controller's namespace already has an address or a route for: the cluster must never shadow
a real network, and the controller must talk only to addresses this backend created.
"""
from __future__ import annotations

import hashlib
import ipaddress
from ipaddress import IPv4Network

from .netns import ClusterError, run

# 10.176.0.0/12: 4096 candidate /24s, away from the ranges Docker and most VPNs hand out.
POOL = ipaddress.ip_network("10.176.0.0/12")
CANDIDATES = 64
CONTROLLER_HOST = 254

_ROUTE_TYPES = {"unicast", "local", "broadcast", "multicast", "throw", "unreachable",
                "prohibit", "blackhole", "nat", "anycast"}


def choose_subnet(test_id: str, taken: list[IPv4Network]) -> IPv4Network:
    """The first candidate /24 for test_id that overlaps none of `taken`."""
    slots = POOL.num_addresses // 256
    start = int(hashlib.sha256(test_id.encode()).hexdigest(), 16)
    for k in range(CANDIDATES):
        # 769 is prime, hence coprime with the slot count: the walk visits distinct slots.
        slot = (start + k * 769) % slots
        candidate = ipaddress.ip_network((int(POOL.network_address) + slot * 256, 24))
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise ClusterError(f"no free /24 in {POOL} for test {test_id!r} after {CANDIDATES} tries: "
                       f"the controller's routes cover them")


def taken_networks() -> list[IPv4Network]:
    """Networks the controller's namespace has addresses or routes for (default route aside)."""
    nets = []
    for line in run(["ip", "-4", "-o", "addr", "show"]).stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            nets.append(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
    for line in run(["ip", "-4", "-o", "route", "show", "table", "all"]).stdout.splitlines():
        fields = line.split()
        if fields and fields[0] in _ROUTE_TYPES:
            fields = fields[1:]
        if not fields or fields[0] == "default":
            continue
        try:
            nets.append(ipaddress.ip_network(fields[0], strict=False))
        except ValueError:
            continue
    return nets


def node_address(subnet: IPv4Network, index: int) -> str:
    """The address of node n<index> (1-based): .1, .2, ..."""
    return str(subnet.network_address + index)


def controller_address(subnet: IPv4Network) -> str:
    return str(subnet.network_address + CONTROLLER_HOST)
