"""The test spec: plain data (Jepsen's test map). Defaults, validation, YAML in and out.

A resolved spec holds every choice, the seed included, so `tectonic test --spec
store/.../spec.yaml` repeats the same schedule.
"""
from __future__ import annotations

import math
import random
import re
from typing import Any

import yaml

from core.errors import SpecError

NEMESES = ("partition", "kill", "pause", "clock", "loss", "delay", "duplicate", "disk", "figure8",
           "membership")
BACKENDS = ("local", "ssh", "docker")
MAX_CONCURRENCY = 1000

DEFAULTS: dict[str, Any] = {
    "name": None,            # default: "<target's name>-<workload>"
    "target": "raftkv",
    "workload": "register",
    "nemesis": [],
    "nemesis_interval": 10.0,
    "node_count": 5,
    "concurrency": 10,
    "time_limit": 60.0,
    "rate": 100.0,           # ops/s across all client threads; 0 = as fast as possible
    "seed": None,            # default: drawn at random, then recorded
    "store": "store",
    "backend": "local",
    "backend_opts": {},      # ssh: nodes, user, key_file, port, sudo, insecure_host_keys; docker: image
    "bugs": [],
    "op_timeout": 5.0,
    "recovery_time": 10.0,   # after the final heal, before the final reads
    "target_opts": {},
    "workload_opts": {},
    "nemesis_opts": {},      # e.g. kill_targets: [majority, all], partition_shapes, loss_probability
}

_TYPES = {
    "name": str, "target": str, "workload": str, "nemesis": list, "nemesis_interval": float,
    "node_count": int, "concurrency": int, "time_limit": float, "rate": float, "seed": int,
    "store": str, "backend": str, "backend_opts": dict, "bugs": list, "op_timeout": float, "recovery_time": float,
    "target_opts": dict, "workload_opts": dict, "nemesis_opts": dict,
}


def _coerce(field: str, value: Any, where: str) -> Any:
    want = _TYPES[field]
    if value is None:
        return None
    if want is list:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise SpecError(f"{where}: field '{field}' must be a list of names or a comma-separated string, got {value!r}")
    if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise SpecError(f"{where}: field '{field}' must be a finite number, got {value!r}")
        return float(value)
    if want is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if want in (str, dict) and isinstance(value, want):
        return value
    raise SpecError(f"{where}: field '{field}' must be {want.__name__}, got {value!r}")


def resolve_spec(spec: dict, where: str = "spec", *, check_target: bool = True) -> dict:
    """Fill defaults, coerce and validate; return a new, complete spec.

    With check_target (the default), the target is loaded (harness.plugins), its options
    validated and completed, and the spec checked against what the target can do: the
    workload's needs, the faults asked for. `check_target=False` is for re-checking a
    stored history, which needs no target."""
    if not isinstance(spec, dict):
        raise SpecError(f"{where}: a spec is a mapping of fields, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(DEFAULTS))
    if unknown:
        raise SpecError(f"{where}: unknown field '{unknown[0]}' (known: {', '.join(DEFAULTS)})")
    out = {k: (v.copy() if isinstance(v, (list, dict)) else v) for k, v in DEFAULTS.items()}
    for k, v in spec.items():
        out[k] = _coerce(k, v, where) if v is not None else DEFAULTS[k]
    _choice(out, "backend", BACKENDS, where)
    for n in out["nemesis"]:
        if n not in NEMESES:
            raise SpecError(f"{where}: field 'nemesis': unknown fault '{n}' (known: {', '.join(NEMESES)})")
    for field in ("backend_opts", "target_opts", "workload_opts", "nemesis_opts"):
        _refuse_non_finite(out[field], f"{field}", where)
    _check_nemesis_opts(out, where)
    _positive(out, "node_count", where, minimum=1)
    _positive(out, "concurrency", where, minimum=1)
    _positive(out, "time_limit", where, minimum=0.001)
    _positive(out, "nemesis_interval", where, minimum=0.001)
    _positive(out, "op_timeout", where, minimum=0.001)
    if out["rate"] < 0:
        raise SpecError(f"{where}: field 'rate' must be >= 0 (0 means unlimited), got {out['rate']}")
    if out["recovery_time"] < 0:
        raise SpecError(f"{where}: field 'recovery_time' must be >= 0, got {out['recovery_time']}")
    if out["node_count"] > 50:
        raise SpecError(f"{where}: field 'node_count' must be at most 50, got {out['node_count']}")
    if out["concurrency"] > MAX_CONCURRENCY:  # a thread each: more would exhaust the machine
        raise SpecError(f"{where}: field 'concurrency' must be at most {MAX_CONCURRENCY}, "
                        f"got {out['concurrency']}")
    if not out["store"].strip():
        raise SpecError(f"{where}: field 'store' must name a directory, got {out['store']!r}")
    _resolve_backend_nodes(out, where)
    target_name = out["target"]
    if check_target:
        target_name = _resolve_target(out, where)
    if out["seed"] is None:
        out["seed"] = random.SystemRandom().randrange(2**31)
    if not out["name"]:
        out["name"] = f"{target_name}-{out['workload']}"
    _check_name(out["name"], where)
    return out


def _check_name(name: str, where: str) -> None:
    """A test name is one directory below the store: no path separators, not `.` or `..`
    (which would put the run beside or above the store) and not `latest` (the store's link
    to the newest run)."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise SpecError(f"{where}: field 'name' may hold only letters, digits, '.', '_' and '-', got {name!r}")
    if not name.strip(".") or name == "latest":
        raise SpecError(f"{where}: field 'name' cannot be {name!r}: it must name a directory of "
                        f"its own inside the store")


def _refuse_non_finite(value: Any, path: str, where: str) -> None:
    """No option anywhere takes NaN or infinity (YAML's .nan, .inf): refuse them with the
    path of the option, before any part reads them as a duration or a probability."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"{where}: field '{path}' must be a finite number, got {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _refuse_non_finite(v, f"{path}.{k}", where)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_non_finite(v, f"{path}[{i}]", where)


def _check_nemesis_opts(spec: dict, where: str) -> None:
    """The nemesis options' values, checked as the faults will read them, before any cluster."""
    from nemesis.combined import check_options
    try:
        check_options(spec["nemesis"], spec["nemesis_opts"])
    except ValueError as e:
        raise SpecError(f"{where}: field 'nemesis_opts': {e}") from None


def _resolve_backend_nodes(spec: dict, where: str) -> None:
    """Remote backends name their hosts (`nodes`, or one per line in `nodes_file`); the
    node count follows from them, and the file is read now so the stored spec repeats."""
    opts = spec["backend_opts"]
    path = opts.pop("nodes_file", None)
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                opts["nodes"] = [ln.split("#")[0].strip() for ln in f if ln.split("#")[0].strip()]
        except OSError as e:
            raise SpecError(f"{where}: backend_opts.nodes_file: cannot read {path}: {e.strerror}") from None
    nodes = opts.get("nodes")
    if isinstance(nodes, str):
        nodes = opts["nodes"] = [n.strip() for n in nodes.split(",") if n.strip()]
    if nodes is None:
        if spec["backend"] == "ssh":
            raise SpecError(f"{where}: the ssh backend needs its hosts: --nodes n1,n2,... or --nodes-file FILE")
        return
    if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) and n for n in nodes):
        raise SpecError(f"{where}: backend_opts.nodes must be a non-empty list of host names, got {nodes!r}")
    if len(set(nodes)) != len(nodes):
        raise SpecError(f"{where}: backend_opts.nodes names a host twice: {nodes!r}")
    spec["node_count"] = len(nodes)


def _resolve_target(spec: dict, where: str) -> str:
    """Load the target, complete and check its options and what the spec asks of it;
    return the target's own name (for the test's default name)."""
    from .options import resolve_options
    from .plugins import target_class, workload_maker
    try:
        cls = target_class(spec["target"])
        spec["target_opts"] = resolve_options(cls.options, spec["target_opts"], "target_opts")
        cls.validate(spec)
        maker = workload_maker(spec["workload"])
    except SpecError as e:
        raise SpecError(f"{where}: {e}") from None
    try:
        workload = maker(spec)
    except SpecError as e:
        raise SpecError(f"{where}: {e}") from None
    except ValueError as e:  # a workload refusing its options
        raise SpecError(f"{where}: workload {spec['workload']}: {e}") from None
    lacking = sorted(set(workload.needs) - set(cls.features))
    if lacking:
        raise SpecError(f"{where}: workload {spec['workload']} needs a target whose client "
                        f"does {', '.join(lacking)}; target {spec['target']} offers "
                        f"{', '.join(sorted(cls.features)) or 'nothing'}")
    _refuse_impossible_faults(spec, cls, where)
    return cls.name


# What a target must declare to take clock faults where the backend cannot move a clock.
CLOCK_NEED = ("Clock capability (harness.protocols.Clock: set_clock_offset, e.g. through "
              "libfaketime as raftkv does)")


def _refuse_impossible_faults(spec: dict, cls: type, where: str) -> None:
    """Faults a combination cannot take, refused before any cluster exists (the nemesis
    checks again when it is built, for specs that reach it another way)."""
    if "figure8" in spec["nemesis"] and spec["backend"] != "local":
        raise SpecError(f"{where}: figure8 faults need the local backend: they delay links "
                        f"with an NFQUEUE delayer inside each node's namespace (--backend local)")
    if "delay" in spec["nemesis"] and spec["backend"] != "local":
        raise SpecError(f"{where}: delay faults need the local backend: they run an NFQUEUE "
                        f"delayer inside each node's namespace (--backend local)")
    if "disk" in spec["nemesis"] and spec["backend"] != "local":
        raise SpecError(f"{where}: disk faults need the local backend: they mount a FUSE "
                        f"filesystem over each node's data dir (--backend local)")
    from .protocols import Clock, DataDir, Kill, Membership, Pause
    for fault, capability in (("kill", Kill), ("pause", Pause), ("disk", Kill), ("disk", DataDir),
                              ("membership", Membership)):
        if fault in spec["nemesis"] and not issubclass(cls, capability):
            raise SpecError(f"{where}: {fault} faults need a target with the "
                            f"{capability.__name__} capability; {spec['target']} has none")
    if "membership" in spec["nemesis"] and spec["node_count"] < 3:
        raise SpecError(f"{where}: membership changes need at least 3 nodes (the cluster "
                        f"never shrinks below a majority of them), got node_count "
                        f"{spec['node_count']}")
    if "clock" not in spec["nemesis"]:
        return
    if spec["backend"] == "docker":
        raise SpecError(f"{where}: clock faults are not possible on the docker backend: "
                        f"containers share the host's clock (use --backend ssh with hosts of their own)")
    if spec["backend"] == "local" and not issubclass(cls, Clock):
        raise SpecError(f"{where}: clock faults on {spec['target']} need a target with the "
                        f"{CLOCK_NEED}, or hosts of their own (--backend ssh): the target has no "
                        f"Clock capability, and the local backend's nodes share one kernel clock")


def _choice(spec: dict, field: str, allowed: tuple, where: str) -> None:
    if spec[field] not in allowed:
        raise SpecError(f"{where}: field '{field}' must be one of {', '.join(allowed)}, got {spec[field]!r}")


def _positive(spec: dict, field: str, where: str, minimum) -> None:
    if spec[field] < minimum:
        raise SpecError(f"{where}: field '{field}' must be at least {minimum}, got {spec[field]}")


def load_spec(path: str, *, check_target: bool = True) -> dict:
    """Read and resolve a YAML spec file; errors name the file (and the line for YAML syntax)."""
    return resolve_spec(read_spec_file(path), where=path, check_target=check_target)


def read_spec_file(path: str) -> dict:
    """The mapping a YAML spec file holds, unresolved, so flags can still override fields
    that defaults derive from (the name follows --workload)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not a text file ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read the spec file: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"{path}{line}: not valid YAML ({problem})") from None
    if data is None:
        raise SpecError(f"{path}: the spec file is empty (a spec names at least its target and "
                        f"workload; without --spec the defaults apply)")
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec is a mapping of fields, got {type(data).__name__}")
    return data


def dump_spec(spec: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
