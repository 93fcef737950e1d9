"""Crash faults: SIGKILL the target's process on chosen nodes; restart it on stop, from the
same data dir, so recovery from what was on disk is what gets tested. A kill took effect
when nothing of the target runs on the node any more (node_fault.py checks)."""
from __future__ import annotations

from harness.protocols import Kill

from .node_fault import NodeFault
from .observe import describe

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

    def took_effect(self, before, after) -> bool:
        return not after

    def effect(self, before) -> str:
        return f"gone ({describe(before)})"
