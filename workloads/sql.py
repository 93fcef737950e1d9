"""The SQL side of the transactional workloads (list-append, rw-register) on SQL targets.

Two workload options say how a SQL target's client runs each `txn` op:

  isolation   read-uncommitted | read-committed | repeatable-read | serializable
              the level every transaction runs at (default: the database's own default,
              given by the target: repeatable-read on MariaDB, read-committed on PostgreSQL)
  append      concat | read-modify-write  (list-append only; default concat)
              concat: one statement appends inside the database (Jepsen's shape: a row per
              key, the list a comma-separated text, append = concatenation);
              read-modify-write: the client reads the list, extends it and writes it back,
              as application code often does, so the database sees a read then a write.

Everything else a txn workload takes (consistency_models, active_keys, ...) is the
workload's own (workloads/list_append.py, workloads/rw_register.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from core.errors import SpecError

ISOLATION_LEVELS = ("read-uncommitted", "read-committed", "repeatable-read", "serializable")
APPEND_MODES = ("concat", "read-modify-write")
TXN_WORKLOADS = ("list-append", "rw-register")


@dataclass(frozen=True)
class SqlOptions:
    workload: str   # list-append or rw-register
    isolation: str  # one of ISOLATION_LEVELS
    append: str     # one of APPEND_MODES

    @property
    def isolation_sql(self) -> str:
        """The level as SQL spells it: REPEATABLE READ."""
        return self.isolation.replace("-", " ").upper()


def sql_options(spec: dict, target: str, default_isolation: str, where: str = "spec") -> SqlOptions:
    """The SQL options of a resolved spec; SpecError (one line, naming the field) when the
    workload is not transactional or an option value is unknown."""
    if spec.get("workload") not in TXN_WORKLOADS:
        raise SpecError(f"{where}: target {target} runs the transactional workloads only "
                        f"({', '.join(TXN_WORKLOADS)}), not {spec.get('workload')!r}")
    opts = spec.get("workload_opts") or {}
    isolation = opts.get("isolation", default_isolation)
    if isolation not in ISOLATION_LEVELS:
        raise SpecError(f"{where}: workload_opts.isolation must be one of "
                        f"{', '.join(ISOLATION_LEVELS)}, got {isolation!r}")
    append = opts.get("append", "concat")
    if append not in APPEND_MODES:
        raise SpecError(f"{where}: workload_opts.append must be one of {', '.join(APPEND_MODES)}, "
                        f"got {append!r}")
    if "append" in opts and spec["workload"] != "list-append":
        raise SpecError(f"{where}: workload_opts.append is for the list-append workload only")
    return SqlOptions(spec["workload"], isolation, append)
