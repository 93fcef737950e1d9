"""Independent linearizable registers: read, write and compare-and-set on rotating keys.

Values are Jepsen's independent tuples [key, v]. Each thread moves to the next key after
ops_per_key / concurrency of its own ops, so each key sees at most `ops_per_key` operations
from all threads at once: every key's history stays small enough for the linearizability
search while the test as a whole runs long; keys are checked separately. A thread's k-th op
depends on (seed, thread, k) alone, so it is the same in every run of the spec.
"""
from __future__ import annotations

from harness import generator as gen

from . import Workload


def make_workload(spec: dict) -> Workload:
    from checkers.linearizable import LinearizableChecker

    opts = spec.get("workload_opts") or {}
    ops_per_key = int(opts.get("ops_per_key", 200))
    values = int(opts.get("values", 5))
    per_thread = max(1, ops_per_key // max(1, int(spec.get("concurrency") or 1)))

    def op(thread, k, draws):
        key = k // per_thread
        r = draws.random()
        if r < 0.5:
            return {"f": "read", "value": [key, None]}
        if r < 0.75:
            return {"f": "write", "value": [key, draws.randrange(values)]}
        return {"f": "cas", "value": [key, [draws.randrange(values), draws.randrange(values)]]}

    checker = LinearizableChecker("cas-register", initial=None, nil_read="absent", independent=True,
                                  time_limit=float(opts.get("check_time_limit", 120)))
    return Workload("register", gen.per_thread(op), {"linearizable": checker},
                    needs={"register"})
