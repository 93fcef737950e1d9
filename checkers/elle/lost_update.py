"""Lost update: two committed transactions read the same version of a key and both wrote it.

Adya defines it only by example (H_lu); what matters is that T1 and T2 both read x0 and
both wrote x, so one of the updates built on x0 is lost whatever the version order. This
is found directly, in one linear pass, even when the version order is too incomplete to
show the corresponding G2-item cycle (Elle's lost-update-cases).
"""
from __future__ import annotations

from typing import Any


class LostUpdates:
    """Collects, per key and first-read value, the ok transactions that then wrote the key."""

    def __init__(self, write_f: str):
        self.write_f = write_f
        self._by_key: dict[Any, dict[Any, list]] = {}

    def add(self, n: int, op: dict, value) -> None:
        reads: dict = {}
        written: set = set()
        for f, k, v in value:
            if f == self.write_f:
                if k not in written and k in reads:
                    read = reads[k]
                    group = tuple(read) if isinstance(read, list) else read
                    self._by_key.setdefault(k, {}).setdefault(group, [read]).append(op.get("index"))
                written.add(k)
            elif k not in reads and k not in written:
                reads[k] = v

    def cases(self) -> list[dict]:
        return [{"key": k, "value": entry[0], "txns": entry[1:]}
                for k, groups in self._by_key.items()
                for entry in groups.values() if len(entry) > 2]
