"""A set: unique elements added to a few keys, then a final read of every key from every
node after the cluster healed. Lost acknowledged adds are the anomaly to look for."""
from __future__ import annotations

from harness import generator as gen

from . import Workload


def make_workload(spec: dict) -> Workload:
    from checkers.set import SetChecker

    opts = spec.get("workload_opts") or {}
    keys = int(opts.get("keys", 3))
    concurrency = max(1, int(spec.get("concurrency") or 1))

    def add(thread, k, draws):
        # Thread t's k-th element: unique across threads, and the same in every run.
        element = k * concurrency + thread + 1
        return {"f": "add", "value": [element % keys, element]}

    final = gen.clients(gen.each_thread([{"f": "read-list", "value": [k, None]} for k in range(keys)]))
    return Workload("set", gen.per_thread(add), {"set": SetChecker()}, final_generator=final,
                    needs={"set"})
