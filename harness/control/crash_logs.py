"""The nodes' logs of a test whose controller died: collected by `tectonic clean`.

A test that ends normally copies its nodes' logs into its run dir during teardown. One
whose controller was SIGKILLed never gets there, yet those logs are what a user needs to
see why it died. So, once the target is known, the controller leaves a manifest in its
work dir naming the run dir and each node's log files; `tectonic clean`, before it removes
a dead test's work dir, copies the logs the manifest names into `<run dir>/nodes/<node>/`,
where a normal teardown would have put them.
"""
from __future__ import annotations

import json
import os
import shutil

MANIFEST = "collect-on-crash.json"


def write_manifest(work_dir: str, run_dir: str, logs: dict[str, list[str]]) -> None:
    """Name the run dir and each node's log files (paths on this machine) for clean."""
    path = os.path.join(work_dir, MANIFEST)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump({"run_dir": os.path.abspath(run_dir), "logs": logs}, f)
    os.replace(path + ".tmp", path)


def collect_logs(work_dir: str) -> list[str]:
    """Copy the logs work_dir's manifest names into its run dir; one line per node done.
    A work dir without a manifest, or whose run dir is gone, yields nothing."""
    try:
        with open(os.path.join(work_dir, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
        run_dir, logs = manifest["run_dir"], dict(manifest["logs"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not os.path.isdir(run_dir):
        return []
    done = []
    for node, paths in logs.items():
        dest = os.path.join(run_dir, "nodes", os.path.basename(str(node)))
        copied = 0
        for path in paths if isinstance(paths, list) else []:
            if isinstance(path, str) and os.path.isfile(path):
                os.makedirs(dest, exist_ok=True)
                shutil.copyfile(path, os.path.join(dest, os.path.basename(path)))
                copied += 1
        if copied:
            done.append(f"logs of {node} ({copied} files) into {dest}")
    return done
