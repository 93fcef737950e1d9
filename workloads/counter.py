"""A counter (Jepsen's): increments by small positive amounts and reads, on one key, then a
final read from every thread after the cluster healed. Each read must lie between the
increments acknowledged before it began and those possibly applied before it ended
(checkers/counter.py); lost, doubled and stale counts fall outside.

Ops: `increment [0, delta]`, `read [0, None] -> [0, total]`. workload_opts: max_increment
(default 5).
"""
from __future__ import annotations

from harness import generator as gen

from . import Workload

KEY = 0


def make_workload(spec: dict) -> Workload:
    from checkers.counter import CounterChecker

    opts = spec.get("workload_opts") or {}
    most = int(opts.get("max_increment", 5))

    def op(thread, k, draws):
        if draws.random() < 0.5:
            return {"f": "increment", "value": [KEY, draws.randint(1, most)]}
        return {"f": "read", "value": [KEY, None]}

    final = gen.clients(gen.each_thread({"f": "read", "value": [KEY, None]}))
    return Workload("counter", gen.per_thread(op), {"counter": CounterChecker()},
                    final_generator=final, needs={"counter"})
