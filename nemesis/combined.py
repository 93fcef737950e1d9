"""One nemesis made of several fault kinds, routing each op to its kind by `f`.

FAULTS names each kind's start and stop ops; a schedule (start a fault, hold, stop it,
rest, repeat, heal at the end) needs nothing else to drive any mix of kinds.
"""
from __future__ import annotations

from . import clock, delay, disk, duplicate, figure8, kill, loss, membership, partition, pause
from .choose import SELECTIONS, allowed_selections
from .loss import checked_probability
from .options import name_list, positive_seconds

FAULTS: dict[str, tuple[str, str]] = {
    "partition": (partition.START, partition.STOP),
    "kill": (kill.START, kill.STOP),
    "pause": (pause.START, pause.STOP),
    "clock": (clock.START, clock.STOP),
    "loss": (loss.START, loss.STOP),
    "delay": (delay.START, delay.STOP),
    "duplicate": (duplicate.START, duplicate.STOP),
    "disk": (disk.START, disk.STOP),
    "figure8": (figure8.START, figure8.STOP),
    "membership": (membership.START, membership.STOP),
}

# Options that only one kind of fault reads: giving one without its fault is a mistake.
KIND_OPTIONS = {"partition_shapes": "partition", "loss_probability": "loss",
                "clock_modes": "clock", "clock_max_offset": "clock", "clock_strobe_period": "clock",
                "duplicate_probability": "duplicate", "disk_torn": "disk", "disk_rolling": "disk",
                "figure8_delay": "figure8",
                **{f"delay_{param}": "delay" for param in delay.DEFAULTS},
                # a partition's nodes come from its shapes, figure8's from its staging, and
                # membership changes pick among the members: no targets
                **{f"{kind}_targets": kind for kind in FAULTS
                   if kind not in ("partition", "figure8", "membership")}}
# `together` (faults held at once) is the schedule's (harness/schedule.py); the rest are ours.
USER_OPTIONS = {"together", "targets", *KIND_OPTIONS}
# Set by the harness, not by users: the chains' test id and the spec's nemesis_interval.
# and the disk fault's mounted lazy filesystems (nemesis.disk.LazyDisks).
INTERNAL_OPTIONS = {"test_id", "interval", "disks", "held_down"}

_NEMESES = {
    "partition": partition.PartitionNemesis,
    "kill": kill.KillNemesis,
    "pause": pause.PauseNemesis,
    "clock": clock.ClockNemesis,
    "loss": loss.LossNemesis,
    "delay": delay.DelayNemesis,
    "duplicate": duplicate.DuplicateNemesis,
    "disk": disk.DiskNemesis,
    "figure8": figure8.Figure8Nemesis,
    "membership": membership.MembershipNemesis,
}

# Healing order: clocks and network first, then resume paused processes, restart killed
# ones last, so restarted nodes come back into a whole network with true time; and only
# then grow the cluster back to its full membership, which needs a leader and a quorum.
_HEAL_ORDER = ("clock", "loss", "duplicate", "delay", "figure8", "partition", "pause", "kill", "disk",
               "membership")


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

    def heal_record(self) -> dict:
        """What the last heal did, by kind, for the kinds whose heal changes something
        worth recording (membership: the nodes added back); empty for the others."""
        return {kind: part.healed for kind, part in self.parts.items()
                if getattr(part, "healed", None)}

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
    delay_distribution, delay_reorder, disk_torn, and disks (nemesis.disk.LazyDisks: the
    mounted lazy filesystems the disk fault crashes). Raises ValueError for an unknown kind or option
    value, and for clock faults on a target that cannot take them.
    """
    check_options(kinds, {k: v for k, v in opts.items() if k not in INTERNAL_OPTIONS})
    parts: dict = {}
    opts = {**opts, "held_down": _held_down_by(parts)}
    for kind in dict.fromkeys(kinds):
        parts[kind] = _NEMESES[kind](nodes, target, rng, opts)
    return CombinedNemesis(parts)


def _held_down_by(parts: dict):
    """Whether some fault of `parts` holds a node down now (killed, or crashed by the disk
    fault, and not restarted yet): a kill or pause that then finds nothing there is no
    error (node_fault.py)."""
    def held_down(node) -> bool:
        kill, disk = parts.get("kill"), parts.get("disk")
        return (kill is not None and node in kill.affected) or \
            (disk is not None and node in disk.crashed)
    return held_down


def check_options(kinds: list[str], opts: dict) -> None:
    """Refuse, with ValueError naming the option, what `make_nemesis` would refuse once the
    cluster exists: an unknown kind or option, an option whose fault is not in `kinds`, or a
    value the fault cannot take. Pure: runs on the spec before any node is made."""
    unknown = [k for k in kinds if k not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULTS)}")
    unknown = sorted(set(opts) - USER_OPTIONS)
    if unknown:
        hint = " (set it with --nemesis-interval)" if unknown[0] == "interval" else ""
        raise ValueError(f"unknown nemesis option {unknown[0]!r}{hint} "
                         f"(known: {', '.join(sorted(USER_OPTIONS))})")
    for key in sorted(opts):
        kind = KIND_OPTIONS.get(key)
        if kind is not None and kind not in kinds:
            raise ValueError(f"nemesis option {key!r} is for the {kind} fault, which this test "
                             f"does not inject (nemesis: {', '.join(kinds) or 'none'})")
    together = opts.get("together", 1)
    if isinstance(together, bool) or not isinstance(together, int) or together < 1:
        raise ValueError(f"nemesis option together must be a whole number >= 1, got {together!r}")
    if "targets" in opts:
        name_list(opts["targets"], SELECTIONS, "targets")
    for kind in kinds:
        if kind not in ("partition", "figure8", "membership"):
            allowed_selections(kind, opts)
    if "partition_shapes" in opts:
        name_list(opts["partition_shapes"], partition.SHAPES, "partition_shapes")
    for kind in ("loss", "duplicate"):
        if f"{kind}_probability" in opts:
            checked_probability(opts[f"{kind}_probability"], kind)
    if "delay" in kinds:
        delay.checked_params({k: opts.get(f"delay_{k}", v) for k, v in delay.DEFAULTS.items()})
    if "figure8" in kinds and "delay" in kinds:
        raise ValueError("figure8 runs delays of its own; it cannot be combined with delay")
    if "figure8_delay" in opts:
        figure8.checked_delay(opts["figure8_delay"])
    for key in ("disk_torn", "disk_rolling"):
        if not isinstance(opts.get(key, False), bool):
            raise ValueError(f"{key} must be true or false, got {opts[key]!r}")
    if "clock_modes" in opts:
        name_list(opts["clock_modes"], clock.MODES, "clock_modes")
    for key in ("clock_max_offset", "clock_strobe_period"):
        if key in opts:
            positive_seconds(opts[key], key)
