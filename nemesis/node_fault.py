"""What kill and pause share: hit chosen nodes through the target, check on each node that
the fault took effect, undo it on stop or heal.

The check does not trust the target: it looks at the processes the node's Remote started
(observe.py). A node whose target processes are already gone because a fault holds it down
is recorded as such; a fault that finds nothing to hit on a node the harness believes is
up, or leaves the processes as they were, raises FaultWithoutEffect, which ends the run as
an error (harness/runner.py), never as a verdict.
"""
from __future__ import annotations

from abc import abstractmethod

from .choose import allowed_selections, choose_nodes, names
from .observe import FaultWithoutEffect, describe, target_processes
from .start_stop import StartStopFault

# How long a fault's effect may take to show (a remote node, a loaded machine). The Kill
# and Pause contracts say it is there when the call returns; this is slack, not a wait.
SETTLE = 2.0
UNOBSERVED = "not checked: the node's Remote started no process of the target"
ALREADY_DOWN = "already down"


class NodeFault(StartStopFault):
    """start-<kind>: value None (the rng picks one of opts["<kind>_targets"]), a selection
    (one, minority, majority, all, leader), {"targets": selection} or a list of node names.
    stop-<kind> undoes it on every node still affected. Subclasses say what doing and
    undoing are, how to tell that it took, and the words the history uses for them.

    The start op's value: {"targets": selection, <done>: [nodes], "observed": {node: what
    the harness saw there after the fault}}. opts["held_down"](node), when given, says
    whether some other fault holds the node down (combined.py): hitting such a node finds
    nothing, and is no error."""

    kind: str
    capability: type  # what the target must declare (harness.protocols.Kill, Pause)
    done: str    # e.g. "killed": the start op's value lists the nodes under this key
    undone: str  # e.g. "restarted": the stop op's value lists the nodes under this key

    def __init__(self, nodes: list, target, rng, opts: dict):
        if not isinstance(target, self.capability):
            raise ValueError(f"{self.kind} faults need a target with the "
                             f"{self.capability.__name__} capability; "
                             f"{target.name!r} has none")
        self.nodes = list(nodes)
        self.target = target
        self.rng = rng
        self.allowed = allowed_selections(self.kind, opts)
        self.held_down = opts.get("held_down") or (lambda node: False)
        self.affected: list = []  # nodes hit and not yet undone, in the order they were hit

    @abstractmethod
    def do(self, node) -> None:
        """Inflict the fault on node."""

    @abstractmethod
    def undo(self, node) -> None:
        """Take the fault back from node."""

    @abstractmethod
    def took_effect(self, before: dict[int, str], after: dict[int, str]) -> bool:
        """Whether the processes seen after the fault (pid -> state) show its effect."""

    @abstractmethod
    def effect(self, before: dict[int, str]) -> str:
        """What the history says was seen on a node where the fault took, e.g. "gone (pid 7)"."""

    def start(self, value) -> dict:
        if isinstance(value, dict):
            value = value.get("targets")
        selection, chosen = choose_nodes(value, self.nodes, self.target, self.rng, self.allowed)
        observed: dict[str, str] = {}
        result = {"targets": selection, self.done: names(chosen), "observed": observed}
        for node in chosen:
            try:
                observed[node.name] = self._inflict(node)
            except FaultWithoutEffect as e:
                observed[node.name] = f"no effect: {e}"
                raise FaultWithoutEffect(str(e), result) from None
        return result

    def _inflict(self, node) -> str:
        """Do the fault on node and return what was seen; FaultWithoutEffect if nothing."""
        before = target_processes(node)
        down = node in self.affected or self.held_down(node)
        if before is not None and not before and not down:
            # Nothing to hit, yet no fault of ours took it down: the target died on its own
            # or runs where the harness cannot see it. Either way the fault would do nothing.
            raise FaultWithoutEffect(f"{self.kind} of {node.name} found no process of the "
                                     f"target there, though no fault holds it down")
        self.do(node)
        if node not in self.affected:
            self.affected.append(node)
        if before is None:
            return UNOBSERVED
        if not before:
            return ALREADY_DOWN
        after = self._settled(node, before)
        if not self.took_effect(before, after):
            raise FaultWithoutEffect(f"{self.kind} of {node.name} had no effect: "
                                     f"{describe(after)} still {'run' if len(after) > 1 else 'runs'}")
        return self.effect(before)

    def _settled(self, node, before: dict[int, str]) -> dict[int, str]:
        from .observe import wait_for
        return wait_for(node, lambda seen: self.took_effect(before, seen), SETTLE)

    def stop(self) -> dict:
        return {self.undone: self._undo_all()}

    def _undo_all(self) -> list[str]:
        """Undo every affected node, trying all of them before raising the first error."""
        undone, errors = [], []
        for node in list(self.affected):
            try:
                self.undo(node)
            except Exception as e:  # one stuck node must not keep the others down
                errors.append(e)
                continue
            self.affected.remove(node)
            undone.append(node.name)
        if errors:
            raise errors[0]
        return undone
