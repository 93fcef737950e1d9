"""Checker results: plain dicts with a `valid` of True, False or "unknown".

A checker is any object with `name` and `check(history, opts) -> dict`, where `history` is a
list of op dicts (see ARCHITECTURE.md) and `opts` may carry `out_dir` (a directory for the
checker's artefacts, or None) and checker-specific options. Checkers import nothing from the
harness, the workloads, the nemesis or the targets: they work on a history alone.
"""
from __future__ import annotations

from typing import Any, Iterable, Protocol

UNKNOWN = "unknown"


class Checker(Protocol):
    name: str

    def check(self, history: list[dict], opts: dict[str, Any]) -> dict[str, Any]: ...


def merge_valid(values: Iterable[Any]) -> Any:
    """Compose verdicts: false beats unknown beats true (an empty composition is true)."""
    seen_unknown = False
    for v in values:
        if v is False:
            return False
        if v is not True:
            seen_unknown = True
    return UNKNOWN if seen_unknown else True


def compose(results: dict[str, dict]) -> dict[str, Any]:
    """One result out of several named ones; top-level `valid` by merge_valid."""
    return {"valid": merge_valid(r.get("valid", UNKNOWN) for r in results.values()),
            "checkers": results}


def run_checkers(checkers: dict[str, Checker], history: list[dict], opts: dict) -> dict[str, Any]:
    """Run each checker; a checker that crashes yields `unknown` with the error, never
    takes the others down with it (the history is still worth judging)."""
    results: dict[str, dict] = {}
    for name, checker in checkers.items():
        try:
            results[name] = checker.check(history, opts)
        except Exception as e:  # noqa: BLE001 - reported in the result, not swallowed
            import traceback
            results[name] = {"valid": UNKNOWN, "error": f"{type(e).__name__}: {e}",
                             "traceback": traceback.format_exc()}
    return compose(results)
