"""What kill and pause share: hit chosen nodes through the target, undo it on stop or heal."""
from __future__ import annotations

from abc import ABC, abstractmethod

from .choose import allowed_selections, choose_nodes, names


class NodeFault(ABC):
    """start-<kind>: value None (the rng picks one of opts["<kind>_targets"]), a selection
    (one, minority, majority, all, leader), {"targets": selection} or a list of node names.
    stop-<kind> undoes it on every node still affected. Subclasses say what doing and
    undoing are, and the words the history uses for them."""

    kind: str
    done: str    # e.g. "killed": the start op's value lists the nodes under this key
    undone: str  # e.g. "restarted": the stop op's value lists the nodes under this key

    def __init__(self, nodes: list, target, rng, opts: dict):
        self.nodes = list(nodes)
        self.target = target
        self.rng = rng
        self.allowed = allowed_selections(self.kind, opts)
        self.affected: list = []  # nodes hit and not yet undone, in the order they were hit

    @property
    def start_f(self) -> str:
        return f"start-{self.kind}"

    @property
    def stop_f(self) -> str:
        return f"stop-{self.kind}"

    @abstractmethod
    def do(self, node) -> None:
        """Inflict the fault on node."""

    @abstractmethod
    def undo(self, node) -> None:
        """Take the fault back from node."""

    def setup(self) -> None:
        pass

    def invoke(self, op: dict) -> dict:
        if op["f"] == self.start_f:
            spec = op.get("value")
            if isinstance(spec, dict):
                spec = spec.get("targets")
            selection, chosen = choose_nodes(spec, self.nodes, self.target, self.rng, self.allowed)
            for node in chosen:
                self.do(node)
                if node not in self.affected:
                    self.affected.append(node)
            return {**op, "value": {"targets": selection, self.done: names(chosen)}}
        if op["f"] == self.stop_f:
            return {**op, "value": {self.undone: self._undo_all()}}
        raise ValueError(f"{self.kind} nemesis cannot do {op['f']!r}; "
                         f"it does {self.start_f}, {self.stop_f}")

    def heal(self) -> None:
        self._undo_all()

    def teardown(self) -> None:
        self.heal()

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
