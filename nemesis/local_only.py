"""Faults that need the local backend: they run a helper of ours inside each node's
namespaces (the delayer, the FUSE disk), which only the local backend can host.

Over ssh the nodes are other machines without our helpers' privileges guaranteed, and docker
containers share the host's kernel queues and mounts in ways we cannot clean up exactly; such
faults are refused there with one clear line rather than faked.
"""
from __future__ import annotations


def refuse_unless_local(nodes: list, fault: str, needs: str) -> None:
    """ValueError naming the fault and what it needs, unless every node is a local one."""
    backends = sorted({n.backend for n in nodes} - {"local"})
    if backends:
        raise ValueError(f"{fault} faults need the local backend ({needs}); "
                         f"this cluster's nodes are {', '.join(backends)}")
