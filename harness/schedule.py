"""The nemesis schedule: pick a fault with the test's seed, hold it for the interval, heal
it, rest for the interval, repeat. Then the final phase heals everything, gives the target
time to recover, and runs the workload's final ops (Jepsen's standard test shape)."""
from __future__ import annotations

import random

from nemesis.healing import HEAL

from . import generator as gen
from .generator import Gen


class FaultSchedule(Gen):
    """rest, start faults, hold, stop them, and again. `together` faults of distinct kinds
    are held at once (some bugs show only under two, e.g. a leader whose clock jumps back
    while it is cut off). Immutable like every generator: the faults in effect travel in
    the next state, so a re-asked op never desynchronises starts and stops."""
    __slots__ = ("faults", "interval", "together", "step", "pending", "active")

    def __init__(self, faults: dict[str, tuple[str, str]], interval: float, together: int = 1,
                 step: int = 0, pending: tuple | None = None, active: tuple = ()):
        self.faults, self.interval, self.together = faults, interval, max(1, together)
        self.step, self.pending, self.active = step, pending, active

    def _next(self, step: int, pending: tuple | None, active: tuple) -> FaultSchedule:
        return FaultSchedule(self.faults, self.interval, self.together, step, pending, active)

    def op(self, ctx):
        phase = self.step % 4
        if phase in (0, 2):
            o = gen.fill(gen.sleep(self.interval), ctx)
            if o is gen.PENDING:
                return o, self
            # After the hold, stop the faults in the reverse order of their starts.
            pending = tuple(reversed(self.active)) if phase == 2 else None
            return o, self._next(self.step + 1, pending, self.active)
        # Each period's kinds come from (seed, period) alone, so a stored spec repeats the
        # same faults whatever the clients did meanwhile.
        pending = self.pending if self.pending is not None else self._choose(
            random.Random(f"{ctx.seed}/{self.step // 4}"))
        kind, rest = pending[0], pending[1:]
        starting = phase == 1
        o = gen.fill({"f": self.faults[kind][0 if starting else 1], "value": None}, ctx)
        if o is gen.PENDING:
            return o, self._next(self.step, pending, self.active)
        active = self.active + (kind,) if starting else self.active[:-1]
        return o, self._next(self.step + (0 if rest else 1), rest or None, active)

    def _choose(self, rng) -> tuple:
        """Kinds drawn with the seed; held together, they start in the order the test
        lists them (`--nemesis partition,clock`: cut the leader off, then skew its clock)."""
        kinds = sorted(self.faults)
        chosen = []
        for _ in range(min(self.together, len(kinds))):
            chosen.append(kinds.pop(int(rng.random() * len(kinds))))
        listed = list(self.faults)
        return tuple(sorted(chosen, key=listed.index))


def test_generator(spec: dict, workload, faults: dict[str, tuple[str, str]]):
    """The whole test as one generator: main phase, final heal, recovery, final ops."""
    main = gen.clients(gen.rate(spec["rate"], workload.generator))
    if faults:
        together = spec["nemesis_opts"].get("together", 1)
        main = gen.any_of(main, gen.nemesis(FaultSchedule(faults, spec["nemesis_interval"], together)))
    steps = [gen.time_limit(spec["time_limit"], main)]
    if workload.final_generator is not None or faults:
        steps += [gen.log("healing every fault"), gen.nemesis(HEAL)]
    if workload.final_generator is not None:
        steps += [gen.log(f"waiting {spec['recovery_time']}s for the cluster to recover"),
                  gen.nemesis(gen.sleep(spec["recovery_time"])),
                  gen.log("final reads"), workload.final_generator]
    return gen.phases(*steps)
