"""A distributed lock: every process acquires it, holds it a while, releases it, rests.

Ops: `acquire` and `release`, value None, all on one lock. Each thread cycles acquire ->
hold -> release -> rest; a process that got `info` is retired, and its successor starts
over with acquire (it holds nothing as far as it knows). The holds are what make a
lease-based lock show its weakness: a holder whose lease expires mid-hold (its keepalives
stuck behind a paused or cut-off member) is still holding when etcd hands the lock on.

The checker is Knossos's mutex model through the linearizability search: acquire needs
the lock free, release needs it held. Two acquires that completed with no release able to
fall between them -- the second holder got the lock while the first had not let go -- is
a mutual-exclusion violation.

It needs a target whose client does "lock" (etcd); asking for it on another is refused
when the spec is resolved, before any cluster is made.

workload_opts: hold (seconds a holder keeps the lock, default 3), rest (seconds between a
release and the next acquire, default 1), check_time_limit (seconds, default 120).
"""
from __future__ import annotations

from harness import generator as gen

from . import Workload


def make_workload(spec: dict) -> Workload:
    from checkers.linearizable import LinearizableChecker

    opts = spec.get("workload_opts") or {}
    hold = _seconds(opts, "hold", 3.0)
    rest = _seconds(opts, "rest", 1.0)
    steps = ({"f": "acquire", "value": None}, gen.sleep(hold),
             {"f": "release", "value": None}, gen.sleep(rest))
    checker = LinearizableChecker("mutex", time_limit=float(opts.get("check_time_limit", 120)))
    return Workload("lock", LockCycles(steps, {}), {"linearizable": checker},
                    needs={"lock"})


class LockCycles(gen.Gen):
    """Each thread through `steps` in turn, from the first again when its process changed.
    Immutable like every generator: an op asked for but not taken changes nothing."""
    __slots__ = ("steps", "position")

    def __init__(self, steps: tuple, position: dict):
        self.steps = steps
        self.position = position  # thread -> (its process, the step it does next)

    def op(self, ctx):
        thread = ctx.some_free_thread()
        if thread is None:
            return gen.PENDING, self
        process = ctx.process_of[thread]
        owner, step = self.position.get(thread, (process, 0))
        if owner != process:
            step = 0  # a retired process's successor knows of no lock it holds
        op = gen.fill({**self.steps[step], "thread": thread}, ctx)
        if op is gen.PENDING:
            return gen.PENDING, self
        return op, LockCycles(self.steps, {**self.position,
                                           thread: (process, (step + 1) % len(self.steps))})


def _seconds(opts: dict, name: str, default: float) -> float:
    value = opts.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"workload lock: workload_opts.{name} must be a number of seconds "
                         f">= 0, got {value!r}")
    return float(value)
