"""Any server program as a target, described in the spec (no Python): `target: process`.

  resolve_spec_block(spec, where)   checks target_opts (config.py) before any cluster exists
  make_target(spec, nodes) -> ProcessTarget

config.py is the block and its placeholders; target.py starts, faults and stops the
program; http_kv.py is the client of the http-kv protocol (the Maelstrom protocol's is in
targets/maelstrom); linking.py tells whether clock faults can work on the program.
"""
from targets.process.config import as_opts, check_workload, parse_block
from targets.process.local_checks import refuse_clock_on_static_program
from targets.process.target import ProcessTarget


def resolve_spec_block(spec: dict, where: str) -> None:
    """Check the spec's target_opts as a process block and store it normalized."""
    config = parse_block(spec["target_opts"], where)
    check_workload(config, spec["workload"], where)
    refuse_clock_on_static_program(spec, config, where)
    spec["target_opts"] = as_opts(config)


def make_target(spec: dict, nodes: list) -> ProcessTarget:
    return ProcessTarget("process", parse_block(spec["target_opts"], "spec"), spec, nodes)


__all__ = ["make_target", "resolve_spec_block", "ProcessTarget"]
