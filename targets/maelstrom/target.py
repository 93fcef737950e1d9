"""The Maelstrom target: the process target (targets/process) running a node binary under
the shim, with the options listed in this package's docstring."""
from core.errors import SpecError
from harness.protocols import NodeNeeds, Option
from targets.process.config import at, parse_block
from targets.process.target import ProcessTarget


class MaelstromTarget(ProcessTarget):
    """The process target running a Maelstrom node binary under the shim."""
    name = "maelstrom"
    options = (
        Option("bin", str, None, "the Maelstrom node binary (required)"),
        Option("args", list, [], "its arguments"),
        Option("port", int, 7500, "the shims' port: UDP for peers, TCP for clients"),
        Option("persistent", bool, True, "the node's working directory survives a kill"),
    )
    needs = NodeNeeds(python_modules=("targets.maelstrom.shim",))

    @classmethod
    def needs_for(cls, spec: dict) -> NodeNeeds:
        return cls.needs

    @classmethod
    def config_of(cls, opts: dict, where: str = ""):
        return parse_block(process_block(opts, where), where)

    @classmethod
    def normalized(cls, opts: dict, config) -> dict:
        return {**opts, "bin": config.command[0]}


def process_block(opts: dict, where: str) -> dict:
    """The process block (targets/process/config.py) that runs this Maelstrom node."""
    if not isinstance(opts.get("bin"), str) or not opts["bin"]:
        raise SpecError(f"{at(where)}target_opts.bin: the Maelstrom node binary is required "
                        f"(--target-opt bin=./my-node)")
    args = opts.get("args") or []
    if not all(isinstance(a, (str, int, float)) for a in args):
        raise SpecError(f"{at(where)}target_opts.args: must be a list of words, got {args!r}")
    # The shim fills the node's identity in through init; braces in args stay literal.
    words = [str(w).replace("{", "{{").replace("}", "}}") for w in [opts["bin"], *args]]
    return {"command": words, "port": opts.get("port", 7500), "health": "tcp",
            "persistent": opts.get("persistent", True), "protocol": "maelstrom"}
