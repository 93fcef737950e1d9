"""Independent linearizable registers: read, write and compare-and-set on rotating keys.

Values are Jepsen's independent tuples [key, v]. Each key sees at most `ops_per_key`
operations from all threads at once, so every key's history stays small enough for the
linearizability search while the test as a whole runs long; keys are checked separately.
"""
from __future__ import annotations

from harness import generator as gen

from . import Workload


def make_workload(spec: dict) -> Workload:
    from checkers.linearizable import LinearizableChecker

    opts = spec.get("workload_opts") or {}
    ops_per_key = int(opts.get("ops_per_key", 200))
    values = int(opts.get("values", 5))
    state = {"n": 0}

    def next_op(ctx):
        key = state["n"] // ops_per_key
        state["n"] += 1
        r = ctx.rng.random()
        if r < 0.5:
            return {"f": "read", "value": [key, None]}
        if r < 0.75:
            return {"f": "write", "value": [key, ctx.rng.randrange(values)]}
        return {"f": "cas", "value": [key, [ctx.rng.randrange(values), ctx.rng.randrange(values)]]}

    checker = LinearizableChecker("cas-register", initial=None, nil_read="absent", independent=True,
                                  time_limit=float(opts.get("check_time_limit", 120)))
    return Workload("register", gen.Fn(next_op), {"linearizable": checker})
