"""Any server program as a target, described in the spec (no Python): `target: process`.

  ProcessTarget(spec, nodes)   target_opts: the block of config.py, checked (validate)
                               before any cluster exists

config.py is the block and its placeholders; target.py starts, faults and stops the
program; http_kv.py is the client of the http-kv protocol (the Maelstrom protocol's is in
targets/maelstrom); linking.py tells whether clock faults can work on the program.
"""
from targets.process.target import ProcessTarget

__all__ = ["ProcessTarget"]
