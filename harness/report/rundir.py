"""Reading what a run left in its results directory (ARCHITECTURE.md, "Results store")."""
from __future__ import annotations

import datetime as dt
import json
import os
import shlex

import yaml

RUN_DIR_TIME_FORMAT = "%Y%m%dT%H%M%S.%f"


def read_results(run_dir: str) -> dict | None:
    """results.json of a run, or None when the run never got that far."""
    try:
        with open(os.path.join(run_dir, "results.json"), encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) else None


def read_spec(run_dir: str) -> dict:
    """spec.yaml of a run ({} when missing or unreadable: a report still shows the rest)."""
    try:
        with open(os.path.join(run_dir, "spec.yaml"), encoding="utf-8") as f:
            spec = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return {}
    return spec if isinstance(spec, dict) else {}


def run_started(run_dir: str) -> dt.datetime | None:
    """When the run started, from its directory name (YYYYmmddTHHMMSS.fff)."""
    try:
        return dt.datetime.strptime(os.path.basename(os.path.normpath(run_dir)), RUN_DIR_TIME_FORMAT)
    except ValueError:
        return None


def is_run_dir(path: str) -> bool:
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, name)) for name in ("spec.yaml", "results.json", "history.jsonl"))


def repeat_command(run_dir: str) -> str:
    """The exact command that repeats the run (its spec holds the seed)."""
    return f"tectonic test --spec {shlex.quote(os.path.join(os.path.abspath(run_dir), 'spec.yaml'))}"
