"""Options a part declares (harness.protocols.Option), checked against what a spec gives.

The result holds every declared option -- the given value, else the default -- so the
stored spec shows every choice a run made, and re-running it repeats them.
"""
from __future__ import annotations

import copy

from core.errors import SpecError

from .protocols import Option


def resolve_options(options: tuple[Option, ...], given: dict, where: str) -> dict:
    """Every option's value; SpecError (one line, naming `where`, e.g. "target_opts") for
    a key not declared or a value not of the declared type."""
    declared = {o.name: o for o in options}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        raise SpecError(f"{where}.{unknown[0]}: unknown option (known: {known})")
    out = {}
    for o in options:
        # A copy: a default list or dict must not be shared by every spec that takes it.
        out[o.name] = _typed(o, given[o.name], where) if o.name in given else copy.deepcopy(o.default)
    return out


def _typed(option: Option, value, where: str):
    wanted = types_of(option)
    if value is None:
        return copy.deepcopy(option.default)
    if float in wanted and int not in wanted and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) and bool not in wanted:
        pass  # YAML's true is an int to Python: never a number here
    elif isinstance(value, wanted):
        return value
    raise SpecError(f"{where}.{option.name} must be {type_words(option)} ({option.help}), "
                    f"got {value!r}")


def types_of(option: Option) -> tuple[type, ...]:
    return option.type if isinstance(option.type, tuple) else (option.type,)


def type_words(option: Option) -> str:
    return " or ".join(t.__name__ for t in types_of(option))


def describe(option: Option) -> str:
    """One line for listings: name=default (type): help."""
    return f"{option.name}={option.default!r} ({type_words(option)}): {option.help}"
