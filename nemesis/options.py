"""Checks of nemesis option values, as plain data: `nemesis.combined.check_options` runs them
on the spec before any cluster exists, and the fault classes parse their options through
the same functions, so what the spec accepts is exactly what the faults take."""
from __future__ import annotations

import math


def name_list(value, allowed: tuple[str, ...], what: str) -> list[str]:
    """A non-empty list of names, each one of `allowed`; ValueError naming `what` otherwise."""
    if (not isinstance(value, (list, tuple)) or not value
            or any(not isinstance(v, str) or v not in allowed for v in value)):
        raise ValueError(f"{what} must be a non-empty list of {', '.join(allowed)}; got {value!r}")
    return list(value)


def positive_seconds(value, name: str) -> float:
    """A finite number of seconds above zero (NaN and infinity are no durations)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value <= 0):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)

