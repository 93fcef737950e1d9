"""Unhandled exceptions in clients, grouped by type (Jepsen's unhandled-exceptions).

Informational: an exception becomes an `info` op, which the safety checkers already
treat as unknown, so this never makes a test invalid; it tells the user where their client
needs a proper error classification.
"""
from __future__ import annotations


class UnhandledExceptionsChecker:
    name = "unhandled-exceptions"

    def check(self, history: list[dict], opts: dict) -> dict:
        groups: dict[str, dict] = {}
        for op in history:
            exc = op.get("exception")
            if not exc or op.get("type") == "invoke":
                continue
            g = groups.setdefault(str(exc), {"count": 0, "example": op})
            g["count"] += 1
        ordered = sorted(groups.items(), key=lambda kv: -kv[1]["count"])
        return {"valid": True, "exceptions": [{"class": k, **v} for k, v in ordered]}
