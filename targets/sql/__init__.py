"""What the SQL targets (mariadb, galera, postgres) share: client.py runs tectonic's txn
ops as SQL transactions through a per-database Dialect; `check_spec` checks a spec
against a target class before any cluster exists."""
from __future__ import annotations

from types import SimpleNamespace


def check_spec(target_class, spec: dict, where: str) -> None:
    """Build `target_class` for placeholder nodes, only for the SpecError its constructor
    raises on a bad spec (the constructors do no I/O)."""
    placeholders = [SimpleNamespace(name=f"n{i}", address=f"0.0.0.{i}", remote=None, dir="")
                    for i in range(1, spec["node_count"] + 1)]
    target_class(spec, placeholders, where)
