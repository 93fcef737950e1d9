"""raftkv: our own Raft key-value store, with bug switches, as a tectonic target.

  RaftKVTarget(spec, nodes)   (spec: bugs: [...], target_opts: {port: 7000, ...})

raft.py is the consensus core (pure, simulated in sim.py); server.py wraps it in sockets,
disk (storage.py) and the clock (clock.py); client.py speaks PROTOCOL.md; BUGS.md lists the
bug switches and what reveals each; target.py deploys it (its options are listed by
`tectonic targets`).
"""
from targets.raftkv.target import RaftKVTarget

__all__ = ["RaftKVTarget"]
