"""The first transaction of a history whose shape the analyses cannot take, said in one line.

The analyses read micro-ops without checking each one's shape (a million transactions
pass through them). When one of them trips over a value of the wrong kind (a TypeError, a
KeyError...), the checker asks `first_malformed` whether the history is at fault: if it
names an op, that is the user's error (exit 254, the op named); if not, the exception was
a bug of ours and stays one.
"""
from __future__ import annotations

from collections.abc import Hashable

from core.history import NEMESIS

# What the analyses trip over: a value of the wrong kind where a shape was assumed.
SHAPE_ERRORS = (TypeError, KeyError, IndexError, AttributeError)

_FUNCTIONS = {"list-append": ("append", "r"), "rw-register": ("w", "r")}


def first_malformed(history, workload: str) -> str | None:
    """A one-line description of the first client transaction that is not a list of
    [f, key, value] micro-ops of `workload`, or None when every one is."""
    functions = _FUNCTIONS[workload]
    for pos, op in enumerate(history):
        if not isinstance(op, dict) or op.get("process") == NEMESIS or op.get("f", "txn") not in ("txn", None):
            continue
        problem = _problem(op.get("value"), functions, workload)
        if problem:
            return f"op {op.get('index', pos)}: {problem}"
    return None


def _problem(value, functions: tuple, workload: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        return f"a transaction's value must be a list of micro-ops, got {value!r}"
    for mop in value:
        if not isinstance(mop, (list, tuple)) or len(mop) != 3:
            return f"micro-op {mop!r} is not [f, key, value]"
        f, k, v = mop
        if not isinstance(f, str) or f not in functions:
            return f"micro-op {mop!r}: {workload} micro-ops are {' or '.join(functions)}"
        if not _atomic(k):
            return f"micro-op {mop!r}: a key must be a number or a string"
        if f == "r" and workload == "list-append":
            if v is not None and not (isinstance(v, (list, tuple)) and all(map(_atomic, v))):
                return f"micro-op {mop!r}: a read of a list is a list of numbers or strings, or null"
        elif v is not None and not _atomic(v):
            return f"micro-op {mop!r}: a value must be a number or a string"
    return None


def _atomic(x) -> bool:
    return isinstance(x, Hashable) and not isinstance(x, (tuple, frozenset))
