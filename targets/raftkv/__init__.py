"""raftkv: our own Raft key-value store, with bug switches, as a tectonic target.

  RaftKVTarget(spec, nodes)   (spec: bugs: [...], target_opts: {port: 7000, ...})

raft.py is the consensus core (pure, simulated in sim.py); server.py wraps it in sockets,
disk (storage.py) and the clock (clock.py); client.py speaks PROTOCOL.md; BUGS.md lists the
bug switches and what reveals each; target.py deploys it (its options are listed by
`tectonic targets`).
"""
__all__ = ["RaftKVTarget"]


def __getattr__(name):
    # Imported on first use, not with the package: the server (`python -m
    # targets.raftkv.server`) runs on nodes that have only this package, not the
    # controller's (target.py imports core and harness).
    if name == "RaftKVTarget":
        from targets.raftkv.target import RaftKVTarget
        return RaftKVTarget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
