"""The results store: store/<test-name>/<YYYYmmddTHHMMSS.fff>/, and store/latest."""
from __future__ import annotations

import datetime as _dt
import json
import os
import threading


def new_run_dir(store: str, test_name: str) -> str:
    """Create a fresh directory for one run and point store/latest at it."""
    now = _dt.datetime.now()
    stamp = now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d}"
    base = os.path.join(store, test_name)
    os.makedirs(base, exist_ok=True)
    path = os.path.join(base, stamp)
    n = 1
    while True:
        try:
            os.makedirs(path)
            break
        except FileExistsError:  # two runs in the same millisecond
            n += 1
            path = os.path.join(base, f"{stamp}-{n}")
    _point_latest(store, path)
    return path


def _point_latest(store: str, run_dir: str) -> None:
    link = os.path.join(store, "latest")
    # A temporary name of this process and thread: parallel runs share the store.
    tmp = f"{link}.{os.getpid()}-{threading.get_ident()}.tmp"
    rel = os.path.relpath(run_dir, store)
    try:
        os.remove(tmp)
    except FileNotFoundError:
        pass
    os.symlink(rel, tmp)
    os.replace(tmp, link)  # atomic: readers never see a missing link


def write_results(run_dir: str, results: dict) -> str:
    path = os.path.join(run_dir, "results.json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, default=_jsonable)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_results(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "results.json"), encoding="utf-8") as f:
        return json.load(f)


def _jsonable(x):
    if isinstance(x, (set, frozenset, tuple)):
        return list(x)
    return repr(x)
