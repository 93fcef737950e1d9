"""What the SQL targets (mariadb, galera, postgres) share: client.py runs tectonic's txn
ops as SQL transactions through a per-database Dialect; `check_spec` checks a spec
against a target class before any cluster exists, `check_options` its target_opts."""
from __future__ import annotations

from types import SimpleNamespace

from core.errors import SpecError


def check_spec(target_class, spec: dict, where: str) -> None:
    """Build `target_class` for placeholder nodes, only for the SpecError its constructor
    raises on a bad spec (the constructors do no I/O)."""
    placeholders = [SimpleNamespace(name=f"n{i}", address=f"0.0.0.{i}", remote=None, dir="")
                    for i in range(1, spec["node_count"] + 1)]
    target_class(spec, placeholders, where)


def check_options(target: str, opts: dict, types: dict, where: str = "spec") -> dict:
    """opts checked against {name: type}; SpecError naming the field otherwise."""
    for key, value in opts.items():
        want = types.get(key)
        if want is None:
            raise SpecError(f"{where}: {target}: unknown option {key!r} in target_opts "
                            f"(known: {', '.join(types)})")
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise SpecError(f"{where}: {target}: target_opts.{key} must be {want.__name__}, "
                            f"got {value!r}")
    return opts


def last_line(text: str) -> str:
    """The last non-empty line of a command's output, for a one-line error."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"
