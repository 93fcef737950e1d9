"""Pause faults: SIGSTOP the target's process on chosen nodes (a long GC pause, a VM
stall: the node holds its sockets but answers nothing); SIGCONT on stop. A pause took
effect when every process of the target on the node is stopped (node_fault.py checks)."""
from __future__ import annotations

from harness.protocols import Pause

from .node_fault import NodeFault
from .observe import STOPPED_STATES

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

    def took_effect(self, before, after) -> bool:
        # Every process still there is stopped (one that exited is not running either).
        return all(state in STOPPED_STATES for state in after.values())

    def effect(self, before) -> str:
        return f"stopped ({', '.join(f'pid {pid}' for pid in sorted(before))})"
