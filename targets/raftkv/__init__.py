"""raftkv: our own Raft key-value store, with bug switches, as a tectonic target.

  make_target(spec, nodes) -> RaftKVTarget   (spec: bugs: [...], raftkv: {port: 7000, ...})

raft.py is the consensus core (pure, simulated in sim.py); server.py wraps it in sockets,
disk (storage.py) and the clock (clock.py); client.py speaks PROTOCOL.md; BUGS.md lists the
bug switches and what reveals each.
"""
from targets.raftkv.target import RaftKVTarget


def make_target(spec: dict, nodes: list) -> RaftKVTarget:
    return RaftKVTarget(spec, nodes)


__all__ = ["make_target", "RaftKVTarget"]
