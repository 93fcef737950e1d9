"""Crash faults: SIGKILL the target's process on chosen nodes; restart it on stop, from the
same data dir, so recovery from what was on disk is what gets tested."""
from __future__ import annotations

from harness.protocols import Kill

from .node_fault import NodeFault

START, STOP = "start-kill", "stop-kill"


class KillNemesis(NodeFault):
    capability = Kill
    kind = "kill"
    done = "killed"
    undone = "restarted"

    def do(self, node) -> None:
        self.target.kill(node)

    def undo(self, node) -> None:
        self.target.start(node)
