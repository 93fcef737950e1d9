"""Workloads: what clients do, and which checkers judge it.

Each module exposes `make_workload(spec) -> Workload`. Workloads build their generators
from harness.generator, a leaf module of pure combinators (the one thing from the harness
they use; it has no dependencies of its own).
"""
from __future__ import annotations

import importlib
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
    name: str
    generator: Any                       # client ops for the main phase (unbounded)
    checkers: dict[str, Any]             # name -> Checker
    final_generator: Any = None          # client ops after the final heal and recovery
    notes: dict = field(default_factory=dict)


def make_workload(spec: dict) -> Workload:
    name = spec["workload"]
    if name not in MODULES:
        raise ValueError(f"unknown workload {name!r} (known: {', '.join(MODULES)})")
    return importlib.import_module(MODULES[name]).make_workload(spec)
