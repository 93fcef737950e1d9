"""Pause faults: SIGSTOP the target's process on chosen nodes (a long GC pause, a VM
stall: the node holds its sockets but answers nothing); SIGCONT on stop."""
from __future__ import annotations

from harness.protocols import Pause

from .node_fault import NodeFault

START, STOP = "start-pause", "stop-pause"


class PauseNemesis(NodeFault):
    capability = Pause
    kind = "pause"
    done = "paused"
    undone = "resumed"

    def do(self, node) -> None:
        self.target.pause(node)

    def undo(self, node) -> None:
        self.target.resume(node)
