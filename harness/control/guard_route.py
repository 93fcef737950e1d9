"""A fallback route that keeps a cluster's traffic from leaving the machine.

The controller reaches its nodes through the connected route of its veth. If that veth
disappears mid-test (someone removed the namespaces, a crash half-way through teardown),
the kernel would send the clients' packets for the cluster's subnet to the default route:
off the machine, to addresses nobody here owns. An `unreachable` route for the same /24,
with a worse metric than the connected one, is used only once the veth is gone: from then
on every send to the subnet fails at once with EHOSTUNREACH, from any socket, bound or not.

The route is tagged with its own protocol number so `tectonic clean` can find the ones a
SIGKILLed controller left behind (any whose subnet no link holds an address in).
"""
from __future__ import annotations

import ipaddress
from ipaddress import IPv4Network

from .netns import ClusterError, run

# Routing protocol numbers 0-255; these are unassigned in /etc/iproute2/rt_protos.
PROTO = "167"
# Far behind the connected route (metric 0), so it is used only when that one is gone.
METRIC = "4000"


def add_guard_route(subnet: IPv4Network) -> None:
    run(["ip", "route", "add", "unreachable", str(subnet), "metric", METRIC, "proto", PROTO])


def remove_guard_route(subnet: IPv4Network) -> None:
    proc = run(["ip", "route", "del", "unreachable", str(subnet), "metric", METRIC,
                "proto", PROTO], check=False)
    if proc.returncode != 0 and str(subnet) in guard_routes_text():
        raise ClusterError(f"cannot remove the guard route for {subnet}: {proc.stderr.strip()}")


def guard_routes() -> list[IPv4Network]:
    """Every guard route in the controller's namespace, whoever added it."""
    nets = []
    for line in guard_routes_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "unreachable":
            nets.append(ipaddress.ip_network(fields[1], strict=False))
    return nets


def guard_routes_text() -> str:
    return run(["ip", "-4", "route", "show", "proto", PROTO], check=False).stdout


def orphaned_guard_routes() -> list[IPv4Network]:
    """Guard routes whose subnet no interface has an address in: their test is gone."""
    held = set()
    for line in run(["ip", "-4", "-o", "addr", "show"]).stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            held.add(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
    return [net for net in guard_routes() if net not in held]
