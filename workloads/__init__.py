"""Workloads: what clients do, and which checkers judge it.

Each module exposes `make_workload(spec) -> Workload`. Workloads build their generators
from harness.generator, a leaf module of pure combinators (the one thing from the harness
they use; it has no dependencies of its own). A workload from outside the project is such
a function too, named by `module:function` or an entry point in `tectonic.workloads`
(harness/plugins.py finds it, and its make_workload makes any of them).

`make_workload` is called when the spec is resolved, before any cluster exists, to learn
what the workload needs: it must be cheap and touch nothing, and it raises ValueError (or
core.errors.SpecError) for workload_opts it cannot take.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MODULES = {
    "register": "workloads.register",
    "set": "workloads.set",
    "list-append": "workloads.list_append",
    "rw-register": "workloads.rw_register",
    "lock": "workloads.lock",
    "counter": "workloads.counter",
    "bank": "workloads.bank",
    # Maelstrom's names for the same workloads: lin-kv is independent cas registers,
    # txn-list-append is Elle's list-append.
    "lin-kv": "workloads.register",
    "txn-list-append": "workloads.list_append",
}


@dataclass
class Workload:
    """What clients do and who judges it. `needs`: the client features it uses, by the
    names targets declare in `features` ("register", "set", "list-append", "rw-register",
    "lock", "counter", "bank"); a target lacking one is refused before any cluster is made."""
    name: str
    generator: Any                       # client ops for the main phase (unbounded)
    checkers: dict[str, Any]             # name -> Checker
    final_generator: Any = None          # client ops after the final heal and recovery
    notes: dict = field(default_factory=dict)
    needs: frozenset[str] = frozenset()
