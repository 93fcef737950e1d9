"""What kill and pause share: hit chosen nodes through the target, undo it on stop or heal."""
from __future__ import annotations

from abc import abstractmethod

from .choose import allowed_selections, choose_nodes, names
from .start_stop import StartStopFault


class NodeFault(StartStopFault):
    """start-<kind>: value None (the rng picks one of opts["<kind>_targets"]), a selection
    (one, minority, majority, all, leader), {"targets": selection} or a list of node names.
    stop-<kind> undoes it on every node still affected. Subclasses say what doing and
    undoing are, and the words the history uses for them."""

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
        self.affected: list = []  # nodes hit and not yet undone, in the order they were hit

    @abstractmethod
    def do(self, node) -> None:
        """Inflict the fault on node."""

    @abstractmethod
    def undo(self, node) -> None:
        """Take the fault back from node."""

    def start(self, value) -> dict:
        if isinstance(value, dict):
            value = value.get("targets")
        selection, chosen = choose_nodes(value, self.nodes, self.target, self.rng, self.allowed)
        for node in chosen:
            self.do(node)
            if node not in self.affected:
                self.affected.append(node)
        return {"targets": selection, self.done: names(chosen)}

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
