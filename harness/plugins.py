"""Where targets and workloads come from: built in, a `module:Name` path, or an entry point.

A spec names a target (likewise a workload) in one of three ways, tried in this order:

  raftkv                 built in (BUILTIN_TARGETS)
  mypkg.mymodule:MyTarget  a Python path: the module is imported, the name looked up in it
  mytarget               an installed distribution's entry point in the group
                         `tectonic.targets` (`tectonic.workloads` for workloads)

Whatever fails -- no such module, no such name, a class that is not a Target or leaves a
method of a capability it declares unimplemented, a malformed option list -- is one
SpecError line naming what is missing, raised while the spec is resolved, so before any
cluster is made. Linearizability models are found the same way by checkers/linearizable
(group `tectonic.models`), which may not import the harness.
"""
from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import Any, Callable

from core.errors import SpecError

from .options import types_of
from .protocols import CAPABILITIES, Option, Target, capabilities

TARGET_GROUP = "tectonic.targets"
WORKLOAD_GROUP = "tectonic.workloads"
BUILTIN_TARGETS = {
    "raftkv": "targets.raftkv:RaftKVTarget",
    "etcd": "targets.etcd:EtcdTarget",
    "process": "targets.process:ProcessTarget",
    "maelstrom": "targets.maelstrom.target:MaelstromTarget",
    "mariadb": "targets.mariadb:MariaDBTarget",
    "galera": "targets.galera:GaleraTarget",
    "postgres": "targets.postgres:PostgresTarget",
}
OPTION_TYPES = (bool, int, float, str, list, dict)


def target_class(name: str) -> type[Target]:
    """The Target class `name` refers to, checked; SpecError (one line) if there is none."""
    path = BUILTIN_TARGETS.get(name) or _plugin_path(TARGET_GROUP, name, "target",
                                                     target_names, "module:Class")
    cls = load_path(path, f"target {name!r}")
    check_target_class(cls, f"target {name!r} ({path})")
    return cls


def workload_maker(name: str) -> Callable[[dict], Any]:
    """The function making workload `name` from a spec (`make_workload(spec) -> Workload`)."""
    from workloads import MODULES
    if name in MODULES:
        return importlib.import_module(MODULES[name]).make_workload
    path = _plugin_path(WORKLOAD_GROUP, name, "workload", workload_names, "module:function")
    maker = load_path(path, f"workload {name!r}")
    if not callable(maker) or inspect.isclass(maker):
        raise SpecError(f"workload {name!r} ({path}) is not a function make_workload(spec) -> Workload")
    return maker


def make_workload(spec: dict):
    """The Workload the resolved spec names."""
    return workload_maker(spec["workload"])(spec)


def describe_target(name: str) -> tuple[str, list[str]]:
    """One line for `tectonic targets` (a broken plugin's says why), and its options."""
    from .options import describe
    path = BUILTIN_TARGETS.get(name) or _entry_point_path(TARGET_GROUP, name) or name
    try:
        cls = target_class(name)
    except SpecError as e:
        return f"{name:<12} {path}  BROKEN: {e}", []
    offers = ", ".join(capabilities(cls)) or "no optional capabilities"
    runs = ", ".join(sorted(cls.features)) or "nothing"
    return (f"{name:<12} {path}  ({cls.name}: {offers}; clients do {runs})",
            [describe(o) for o in cls.options])


def describe_workload(name: str) -> str:
    """One line for `tectonic workloads`: where it comes from and what it needs."""
    from .spec import resolve_spec
    try:
        workload = workload_maker(name)(resolve_spec({"workload": name}, check_target=False))
    except (SpecError, ValueError) as e:
        return f"{name:<16} BROKEN: {e}"
    return f"{name:<16} needs a target whose clients do {', '.join(sorted(workload.needs)) or 'anything'}"


def target_names() -> list[str]:
    """Every target name a spec may use without a module:Class path."""
    return list(dict.fromkeys([*BUILTIN_TARGETS, *(ep.name for ep in entry_points(group=TARGET_GROUP))]))


def workload_names() -> list[str]:
    from workloads import MODULES
    return list(dict.fromkeys([*MODULES, *(ep.name for ep in entry_points(group=WORKLOAD_GROUP))]))


def load_path(path: str, what: str) -> Any:
    """The object `module:name` (name may be dotted) names; SpecError if it is not there."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise SpecError(f"{what}: {path!r} is not of the form module:Name")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise SpecError(f"{what}: cannot import {module_name!r}: {e} (is it installed, "
                        f"or on PYTHONPATH?)") from None
    except Exception as e:  # noqa: BLE001 - the plugin's own import failed: its author's to fix
        raise SpecError(f"{what}: importing {module_name!r} failed: {type(e).__name__}: {e}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"{what}: module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj


def check_target_class(cls: Any, what: str) -> None:
    """Raise SpecError unless cls is a usable Target class: a subclass of
    harness.protocols.Target implementing every method of Target and of each capability
    it declares, with options a tuple of distinct Options of the supported types."""
    if not inspect.isclass(cls) or not issubclass(cls, Target):
        raise SpecError(f"{what} is not a Target: subclass harness.protocols.Target")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        owners = [cap.__name__ for cap in (Target, *CAPABILITIES.values())
                  if issubclass(cls, cap) and set(missing) & set(cap.__abstractmethods__)]
        raise SpecError(f"{what} does not implement {', '.join(missing)} "
                        f"(required by {', '.join(owners)})")
    options = cls.options
    if not isinstance(options, (tuple, list)) or not all(isinstance(o, Option) for o in options):
        raise SpecError(f"{what}: options must be a tuple of harness.protocols.Option")
    names = [o.name for o in options]
    if len(set(names)) != len(names):
        raise SpecError(f"{what}: option {next(n for n in names if names.count(n) > 1)!r} "
                        f"is declared twice")
    for o in options:
        if not all(t in OPTION_TYPES for t in types_of(o)):
            raise SpecError(f"{what}: option {o.name!r} has type {o.type!r}; use one of "
                            f"{', '.join(t.__name__ for t in OPTION_TYPES)} (or a tuple of them)")
    if isinstance(cls.features, str) or not all(isinstance(f, str) for f in cls.features):
        raise SpecError(f"{what}: features must be a set of names, e.g. {{'register'}}")


def _plugin_path(group: str, name: str, what: str, known: Callable[[], list[str]],
                 form: str) -> str:
    """Where a plugged-in `what` named `name` is: its entry point, or the name itself when
    it is a module:attribute path; SpecError (one line, listing what is known) if neither."""
    path = _entry_point_path(group, name)
    if path is None and ":" in name:
        path = name
    if path is None:
        raise SpecError(f"field '{what}': unknown {what} {name!r} (known: "
                        f"{', '.join(sorted(known()))}; or give {form})")
    return path


def _entry_point_path(group: str, name: str) -> str | None:
    for ep in entry_points(group=group, name=name):
        return ep.value
    return None
