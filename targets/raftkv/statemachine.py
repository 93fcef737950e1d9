"""The replicated state: per-key registers and lists, changed by transactions of micro-ops.

Every request is a transaction: a list of micro-ops applied atomically, all or nothing.

  ["r", k, None]          read k: its value (an int, a list, or None if never written)
  ["rl", k, None]         read k as a list: [] if never written
  ["w", k, v]             write v to k
  ["cas", k, old, new]    if k holds old, write new; else the whole transaction fails
  ["append", k, v]        append v to the list at k (created empty)
  ["incr", k, d]          add the int d to the int at k (a never-written k counts as 0)

The result is the micro-op list with every read's third element filled in. Keys are ints or
strings and stay distinct (3 and "3" are two keys), which is why snapshots are pair lists.
"""
from __future__ import annotations

from typing import Any

READS = ("r", "rl")
_ARITY = {"r": 3, "rl": 3, "w": 3, "append": 3, "cas": 4, "incr": 3}


class TxnAborted(Exception):
    """The transaction certainly changed nothing; str(e) is the client's error name."""


def validate(ops: Any) -> list:
    """Check a transaction's shape; raise ValueError with what is wrong."""
    if not isinstance(ops, list) or not ops:
        raise ValueError("ops must be a non-empty list of micro-ops")
    for op in ops:
        if not isinstance(op, list) or not op or op[0] not in _ARITY:
            raise ValueError(f"bad micro-op {op!r}: expected one of {sorted(_ARITY)}")
        if len(op) != _ARITY[op[0]]:
            raise ValueError(f"micro-op {op!r} needs {_ARITY[op[0]]} elements")
        key = op[1]
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise ValueError(f"key {key!r} in {op!r} must be an int or a string")
        if op[0] == "incr" and (isinstance(op[2], bool) or not isinstance(op[2], int)):
            raise ValueError(f"increment {op[2]!r} in {op!r} must be an int")
    return ops


def read_only(ops: list) -> bool:
    return all(op[0] in READS for op in ops)


class KVStore:
    def __init__(self):
        self.data: dict = {}

    def read(self, ops: list) -> list:
        """Answer a read-only transaction from the current state."""
        return [self._read(op) for op in ops]

    def apply(self, ops: list) -> list:
        """Apply a transaction atomically; raise TxnAborted (changing nothing) if it fails."""
        staged: dict = {}
        missing = object()

        def current(key):
            value = staged.get(key, missing)
            return self.data.get(key) if value is missing else value

        results = []
        for op in ops:
            kind, key = op[0], op[1]
            if kind == "r":
                results.append([kind, key, _copy(current(key))])
            elif kind == "rl":
                value = current(key)
                results.append([kind, key, [] if value is None else _copy(value)])
            elif kind == "w":
                staged[key] = op[2]
                results.append(op)
            elif kind == "cas":
                if current(key) != op[2]:
                    raise TxnAborted("cas-mismatch")
                staged[key] = op[3]
                results.append(op)
            elif kind == "incr":
                value = current(key)
                if value is None:
                    value = 0
                elif isinstance(value, bool) or not isinstance(value, int):
                    raise TxnAborted("not-a-number")
                staged[key] = value + op[2]
                results.append(op)
            else:  # append
                value = current(key)
                if value is None:
                    value = []
                elif not isinstance(value, list):
                    raise TxnAborted("not-a-list")
                elif key not in staged:
                    value = list(value)  # copy on first write so an abort changes nothing
                value.append(op[2])
                staged[key] = value
                results.append(op)
        self.data.update(staged)
        return results

    def _read(self, op: list) -> list:
        value = self.data.get(op[1])
        if op[0] == "rl" and value is None:
            value = []
        return [op[0], op[1], _copy(value)]

    def snapshot(self) -> list:
        return [[k, _copy(v)] for k, v in self.data.items()]

    def restore(self, pairs: list | None) -> None:
        self.data = {k: v for k, v in (pairs or [])}


def _copy(value):
    return list(value) if isinstance(value, list) else value
