"""What the SQL targets (mariadb, galera, postgres) share: client.py runs tectonic's txn
ops as SQL transactions through a per-database Dialect; `check_spec` checks a spec
against a target class before any cluster exists (their `validate`)."""
from __future__ import annotations

from types import SimpleNamespace


def check_spec(target_class, spec: dict, where: str = "spec") -> None:
    """Build `target_class` for placeholder nodes, only for the SpecError its constructor
    raises on a bad spec (the constructors do no I/O): the SQL targets' `validate`."""
    placeholders = [SimpleNamespace(name=f"n{i}", address=f"0.0.0.{i}", remote=None, dir="")
                    for i in range(1, spec["node_count"] + 1)]
    target_class(spec, placeholders, where)


def last_line(text: str) -> str:
    """The last non-empty line of a command's output, for a one-line error."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"
