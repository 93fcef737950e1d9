"""What every fault kind shares: a start op and a stop op, and a heal that undoes the
fault whatever state it is in (a fresh nemesis heals first, clearing a crashed test's)."""
from __future__ import annotations

from abc import ABC, abstractmethod


class StartStopFault(ABC):
    kind: str   # "partition", ...: the ops are start-<kind> and stop-<kind>

    @property
    def start_f(self) -> str:
        return f"start-{self.kind}"

    @property
    def stop_f(self) -> str:
        return f"stop-{self.kind}"

    @abstractmethod
    def start(self, value) -> dict:
        """Inflict the fault as the start op's value asks; return what was done."""

    @abstractmethod
    def stop(self) -> dict:
        """Undo the fault; return what was undone."""

    def setup(self) -> None:
        self.stop()

    def invoke(self, op: dict) -> dict:
        if op["f"] == self.start_f:
            return {**op, "value": self.start(op.get("value"))}
        if op["f"] == self.stop_f:
            return {**op, "value": self.stop()}
        raise ValueError(f"{self.kind} nemesis cannot do {op['f']!r}; "
                         f"it does {self.start_f}, {self.stop_f}")

    def heal(self) -> None:
        self.stop()

    def teardown(self) -> None:
        self.heal()
