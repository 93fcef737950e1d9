"""The nemesis schedule: pick a fault with the test's seed, hold it for the interval, heal
it, rest for the interval, repeat. Then the final phase heals everything, gives the target
time to recover, and runs the workload's final ops (Jepsen's standard test shape)."""
from __future__ import annotations

from . import generator as gen
from .generator import Gen


class FaultSchedule(Gen):
    """rest, start a fault, hold, stop it, and again. Immutable like every generator: the
    fault in effect travels in the next state, so a re-asked op never desynchronises
    starts and stops."""
    __slots__ = ("faults", "interval", "step", "active")

    def __init__(self, faults: dict[str, tuple[str, str]], interval: float, step: int = 0,
                 active: str | None = None):
        self.faults, self.interval, self.step, self.active = faults, interval, step, active

    def op(self, ctx):
        phase = self.step % 4
        if phase in (0, 2):
            o = gen.fill(gen.sleep(self.interval), ctx)
            return o, (FaultSchedule(self.faults, self.interval, self.step + 1, self.active)
                       if o is not gen.PENDING else self)
        if phase == 1:
            kind = sorted(self.faults)[int(ctx.rng.random() * len(self.faults))]
            o = gen.fill({"f": self.faults[kind][0], "value": None}, ctx)
            return o, (FaultSchedule(self.faults, self.interval, self.step + 1, kind)
                       if o is not gen.PENDING else self)
        o = gen.fill({"f": self.faults[self.active][1], "value": None}, ctx)
        return o, (FaultSchedule(self.faults, self.interval, self.step + 1, None)
                   if o is not gen.PENDING else self)


HEAL = {"f": "heal", "value": None}


class HealingNemesis:
    """Wraps a nemesis so that a `heal` op heals every fault and is recorded like any other
    nemesis op (the final heal then shows in the history and on the plots)."""

    def __init__(self, inner):
        self.inner = inner

    def setup(self):
        self.inner.setup()

    def invoke(self, op):
        if op.get("f") == "heal":
            self.inner.heal()
            return {**op, "value": "healed every fault"}
        return self.inner.invoke(op)

    def heal(self):
        self.inner.heal()

    def teardown(self):
        self.inner.teardown()


def test_generator(spec: dict, workload, faults: dict[str, tuple[str, str]]):
    """The whole test as one generator: main phase, final heal, recovery, final ops."""
    main = gen.clients(gen.rate(spec["rate"], workload.generator))
    if faults:
        main = gen.any_of(main, gen.nemesis(FaultSchedule(faults, spec["nemesis_interval"])))
    steps = [gen.time_limit(spec["time_limit"], main)]
    if workload.final_generator is not None or faults:
        steps += [gen.log("healing every fault"), gen.nemesis(HEAL)]
    if workload.final_generator is not None:
        steps += [gen.log(f"waiting {spec['recovery_time']}s for the cluster to recover"),
                  gen.nemesis(gen.sleep(spec["recovery_time"])),
                  gen.log("final reads"), workload.final_generator]
    return gen.phases(*steps)
