"""What can be known about a node's program before any cluster exists.

On the local backend the nodes see the controller's files, so a clock fault the program
cannot take (linking.py) is refused with the spec's other errors. Remote nodes are checked
again at set-up (ProcessTarget.setup), on the node itself.
"""
from __future__ import annotations

import os
import shutil

from core.errors import SpecError
from targets.process.config import ProcessConfig, at
from targets.process.linking import static_reason


def refuse_clock_on_static_program(spec: dict, config: ProcessConfig, where: str) -> None:
    if "clock" not in spec["nemesis"] or spec["backend"] != "local":
        return
    program = shutil.which(config.command[0])
    if program is None:
        raise SpecError(f"{at(where)}{config.command[0]} is not an executable here "
                        f"(check the command, and chmod +x)")
    reason = static_reason(program, _read, shutil.which)
    if reason:
        raise SpecError(f"{at(where)}clock faults refused: {reason}, so libfaketime "
                        f"(LD_PRELOAD) cannot move its clock; drop clock from --nemesis")


def _read(path: str, nbytes: int) -> bytes:
    try:
        with open(os.path.realpath(path), "rb") as f:
            return f.read(nbytes)
    except OSError:
        return b""
