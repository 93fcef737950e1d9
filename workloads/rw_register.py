"""rw-register transactions: writes of unique values and reads of registers, checked by
Elle (with per-key linearizable version inference: every key is a linearizable register
in a strictly serializable store)."""
from __future__ import annotations

from . import Workload
from .transactions import txn_generator


def make_workload(spec: dict) -> Workload:
    from checkers.elle import ElleChecker

    opts = spec.get("workload_opts") or {}
    models = opts.get("consistency_models", ["strict-serializable"])
    checker = ElleChecker("rw-register", consistency_models=models,
                          time_limit=float(opts.get("check_time_limit", 120)),
                          linearizable_keys=True, wfr_keys=True)
    ops = txn_generator("w", None, opts, int(spec.get("concurrency") or 1))
    return Workload("rw-register", ops, {"elle": checker},
                    needs={"rw-register"})
