"""One nemesis made of several fault kinds, routing each op to its kind by `f`.

FAULTS names each kind's start and stop ops; a schedule (start a fault, hold, stop it,
rest, repeat, heal at the end) needs nothing else to drive any mix of kinds.
"""
from __future__ import annotations

from . import clock, delay, duplicate, kill, loss, partition, pause

FAULTS: dict[str, tuple[str, str]] = {
    "partition": (partition.START, partition.STOP),
    "kill": (kill.START, kill.STOP),
    "pause": (pause.START, pause.STOP),
    "clock": (clock.START, clock.STOP),
    "loss": (loss.START, loss.STOP),
    "delay": (delay.START, delay.STOP),
    "duplicate": (duplicate.START, duplicate.STOP),
}

# `together` (faults held at once) is the schedule's (harness/schedule.py); the rest are ours.
OPTIONS = {"test_id", "interval", "together", "targets", *(f"{kind}_targets" for kind in FAULTS),
           "partition_shapes", "loss_probability", "clock_modes", "clock_max_offset",
           "clock_strobe_period", "duplicate_probability",
           *(f"delay_{param}" for param in delay.DEFAULTS)}

_NEMESES = {
    "partition": partition.PartitionNemesis,
    "kill": kill.KillNemesis,
    "pause": pause.PauseNemesis,
    "clock": clock.ClockNemesis,
    "loss": loss.LossNemesis,
    "delay": delay.DelayNemesis,
    "duplicate": duplicate.DuplicateNemesis,
}

# Healing order: clocks and network first, then resume paused processes, restart killed
# ones last, so restarted nodes come back into a whole network with true time.
_HEAL_ORDER = ("clock", "loss", "duplicate", "delay", "partition", "pause", "kill")


class CombinedNemesis:
    """Conforms to the Nemesis protocol; `kinds` lists the fault kinds it holds."""

    def __init__(self, parts: dict):
        self.parts = parts
        self.kinds = list(parts)
        self._route = {f: parts[kind] for kind in parts for f in FAULTS[kind]}

    def setup(self) -> None:
        for kind in self.kinds:
            self.parts[kind].setup()

    def invoke(self, op: dict) -> dict:
        part = self._route.get(op.get("f"))
        if part is None:
            raise ValueError(f"no nemesis here does {op.get('f')!r}; this one does "
                             f"{', '.join(sorted(self._route)) or 'nothing'}")
        return part.invoke(op)

    def heal(self) -> None:
        self._each_in_heal_order("heal")

    def teardown(self) -> None:
        self._each_in_heal_order("teardown")

    def _each_in_heal_order(self, method: str) -> None:
        """Call method on every part even when one fails; then raise the first error."""
        errors = []
        for kind in sorted(self.kinds, key=_HEAL_ORDER.index):
            try:
                getattr(self.parts[kind], method)()
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]


def make_nemesis(kinds: list[str], nodes: list, target, rng, opts: dict) -> CombinedNemesis:
    """A nemesis injecting the given fault kinds on nodes, choosing with rng.

    opts (all optional): test_id (names the iptables chains), targets / <kind>_targets
    (node selections to draw from), partition_shapes, loss_probability, clock_modes,
    clock_max_offset, clock_strobe_period, duplicate_probability, delay_mean, delay_jitter,
    delay_distribution, delay_reorder. Raises ValueError for an unknown kind or option
    value, and for clock faults on a target that cannot take them.
    """
    unknown = [k for k in kinds if k not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULTS)}")
    unknown = sorted(set(opts) - OPTIONS)
    if unknown:
        raise ValueError(f"unknown nemesis option {unknown[0]!r} (known: {', '.join(sorted(OPTIONS - {'test_id', 'interval'}))})")
    together = opts.get("together", 1)
    if isinstance(together, bool) or not isinstance(together, int) or together < 1:
        raise ValueError(f"nemesis option together must be a whole number >= 1, got {together!r}")
    parts = {kind: _NEMESES[kind](nodes, target, rng, opts) for kind in dict.fromkeys(kinds)}
    return CombinedNemesis(parts)
