"""Maelstrom node binaries under real faults: `--target maelstrom --target-opt bin=./my-node`.

A Maelstrom node speaks JSON on stdin/stdout (jepsen-io/maelstrom doc/protocol.md). Each
node of the cluster runs the binary under a shim (shim.py) that is its network: peers'
messages cross the real network, so partitions, loss and pauses reach them; client.py turns
tectonic's ops into lin-kv and txn-list-append requests. The deployment is the process
target's (targets/process) with protocol maelstrom; target_opts here:

  bin         the node binary (required); a relative path is from where tectonic runs
  args        its arguments, a list (default none)
  port        the shims' port, UDP for peers and TCP for clients (default 7500)
  persistent  true (default): the node's working directory, its data dir, survives a kill
"""
__all__ = ["MaelstromTarget", "process_block"]


def __getattr__(name):
    # Imported on first use, not with the package: the shim (shim.py, standard library
    # only) is imported on nodes that have only this package, and target.py imports the
    # controller's core and harness.
    if name in __all__:
        from targets.maelstrom import target
        return getattr(target, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
