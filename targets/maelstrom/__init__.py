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
from core.errors import SpecError
from targets.process.config import check_workload, parse_block
from targets.process.local_checks import refuse_clock_on_static_program
from targets.process.target import ProcessTarget

OPTIONS = ("bin", "args", "port", "persistent")


def process_block(opts: dict, where: str) -> dict:
    """The process block (targets/process/config.py) that runs this Maelstrom node."""
    if not isinstance(opts, dict):
        raise SpecError(f"{where}: target_opts must be a mapping, got {opts!r}")
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise SpecError(f"{where}: target_opts.{unknown[0]}: unknown option for maelstrom "
                        f"(known: {', '.join(OPTIONS)})")
    if not isinstance(opts.get("bin"), str) or not opts["bin"]:
        raise SpecError(f"{where}: target_opts.bin: the Maelstrom node binary is required "
                        f"(--target-opt bin=./my-node)")
    args = opts.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
        raise SpecError(f"{where}: target_opts.args: must be a list of words, got {args!r}")
    # The shim fills the node's identity in through init; braces in args stay literal.
    words = [str(w).replace("{", "{{").replace("}", "}}") for w in [opts["bin"], *args]]
    return {"command": words, "port": opts.get("port", 7500), "health": "tcp",
            "persistent": opts.get("persistent", True), "protocol": "maelstrom"}


def resolve_spec_block(spec: dict, where: str) -> None:
    config = parse_block(process_block(spec["target_opts"], where), where)
    check_workload(config, spec["workload"], where)
    refuse_clock_on_static_program(spec, config, where)
    spec["target_opts"] = {**spec["target_opts"], "bin": config.command[0]}


def make_target(spec: dict, nodes: list) -> ProcessTarget:
    return ProcessTarget("maelstrom", parse_block(process_block(spec["target_opts"], "spec"), "spec"),
                         spec, nodes)


__all__ = ["make_target", "resolve_spec_block", "process_block"]
