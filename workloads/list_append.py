"""list-append transactions (Elle's most informative workload): appends of unique values
and reads of whole lists, checked for strict serializability."""
from __future__ import annotations

from . import Workload
from .transactions import txn_generator


def make_workload(spec: dict) -> Workload:
    from checkers.elle import ElleChecker

    opts = spec.get("workload_opts") or {}
    models = opts.get("consistency_models", ["strict-serializable"])
    checker = ElleChecker("list-append", consistency_models=models,
                          time_limit=float(opts.get("check_time_limit", 120)))
    ops = txn_generator("append", None, opts, int(spec.get("concurrency") or 1))
    return Workload("list-append", ops, {"elle": checker},
                    needs={"list-append"})
