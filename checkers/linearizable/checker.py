"""LinearizableChecker: the history -> result function the harness and the CLI call."""
from __future__ import annotations

import os
import re
import time
from typing import Any

from core.gc_pause import paused_gc
from core.history.faults import fault_periods

from .anomaly import name_anomaly
from .calls import FAIL_CAS, prepare
from .explain import explain_failure, explain_text, jsonable
from .models import make_model
from .render import render_failure
from .schedule import decide
from .search import Budget

# The cache is the search's memory: a search that has grown by MEMORY_BUDGET stops with
# "unknown" rather than be killed by the kernel (each worker process has its own).
MEMORY_BUDGET = 1 << 30
FAILURES = ("all", "first")   # which failing keys a check finds and explains


class LinearizableChecker:
    """Is the history linearizable with respect to a sequential model?

    model: a name in MODELS (register, cas-register, kv, multi-register, set, mutex,
    unordered-queue, fifo-queue). initial: the model's initial state (None: the model's
    own: nil for registers, "" per key for kv, {} for multi-register, empty otherwise).
    nil_read: "unknown" (Knossos: a read of nil tells nothing) or "absent" (Porcupine's
    etcd data: nil means never written). independent: values are Jepsen's [key, value]
    tuples and each key is checked on its own (the kv model splits on `key` anyway).
    fail_cas: "ignored" (default; a failed op never happened, Knossos) or "observed" (a
    failed CAS saw a value other than its `from`, Porcupine's etcd semantics; right when
    the client reports `fail` for a CAS only on a value mismatch). time_limit (seconds,
    None for none), max_cache_entries (per key, None for no cap) and a memory budget
    (each search may grow by 1 GiB) bound the search, past them a key is "unknown".
    processes: worker processes (None: as many as pay off, 1: never fork).
    failures: "all" (default; every key is searched, and each failing one explained, as
    Knossos and Porcupine's verbose check do) or "first" (the search stops at the first
    key found not linearizable and explains that one; the others are left "unknown":
    Porcupine's plain check, for a quick verdict).
    """

    name = "linearizable"

    def __init__(self, model: str, *, initial: Any = None, nil_read: str = "unknown",
                 independent: bool = False, time_limit: float | None = 60.0,
                 fail_cas: str = "ignored", max_cache_entries: int | None = None,
                 processes: int | None = None, failures: str = "all"):
        self.model_name = model
        self.model = make_model(model, initial, nil_read)
        if fail_cas not in FAIL_CAS:
            raise ValueError(f"fail_cas must be one of {', '.join(FAIL_CAS)}, got {fail_cas!r}")
        if failures not in FAILURES:
            raise ValueError(f"failures must be one of {', '.join(FAILURES)}, got {failures!r}")
        self.options = {"initial": initial, "nil_read": nil_read, "independent": independent,
                        "time_limit": time_limit, "fail_cas": fail_cas, "failures": failures}
        self.failures = failures
        self.independent = independent
        self.fail_cas = fail_cas
        self.time_limit = time_limit
        self.max_cache_entries = max_cache_entries
        self.processes = processes

    def check(self, history: list[dict], opts: dict | None = None) -> dict[str, Any]:
        """Check `history`; opts["out_dir"] (optional) receives linear/<key>.html per
        failing key. Raises ValueError naming the op on a malformed history.

        Python's cycle collector is paused meanwhile: preparing and searching allocate
        tuples by the hundred thousand, none of them in a cycle, and each allocation burst
        made it walk the whole heap (a harness's heap holds the history and more): after
        the kv files of bench/linearizability.py, multi-6 took 28 ms with it, 17 without.
        Whatever cycles the checker does leave are collected once it is back on."""
        with paused_gc():
            return self._check(history, opts)

    def _check(self, history: list[dict], opts: dict | None) -> dict[str, Any]:
        opts = opts or {}
        started = time.monotonic()
        deadline = started + self.time_limit if self.time_limit is not None else None
        prepared = prepare(history, self.model, independent=self.independent, fail_cas=self.fail_cas)
        keys = prepared.keys
        budget = Budget(deadline, self.max_cache_entries, MEMORY_BUDGET)
        outcomes = decide(keys, self.model, budget, self.processes, first_failure=self.failures == "first")

        failures: dict[str, dict] = {}
        unknown: list[str] = []
        reasons: dict[str, str] = {}
        faults = None   # on the clock of time, found at the first failure
        for key, calls in keys.items():
            outcome = outcomes[key]
            if outcome.valid is False:
                if faults is None:
                    faults = self._faults(history, prepared, "time")
                failures[key] = explain_failure(calls, self.model, outcome)
                failures[key]["anomaly"] = name_anomaly(calls, outcome.stuck_at, self.model,
                                                        history, faults)
            elif outcome.valid is not True:
                unknown.append(key)
                reasons[key] = outcome.reason or "undecided"
        out_dir = opts.get("out_dir")
        if out_dir and failures:
            self._write_pages(out_dir, history, prepared, outcomes, failures, faults)

        result: dict[str, Any] = {
            "valid": False if failures else ("unknown" if unknown else True),
            "model": self.model_name,
            "keys_checked": len(keys),
            "ops_checked": sum(len(c) for c in keys.values()),
            "failures": failures,
            # the op no linearization could fit, per failing key (checkers/detection.py)
            "blamed": [f["op"]["invoke_index"] for f in failures.values()],
            "unknown_keys": unknown,
            "unknown_reasons": reasons,
            "configurations": sum(o.configurations for o in outcomes.values()),
            "left_out": {"failed": prepared.dropped_fail, "unknown_reads": prepared.skipped_unknown,
                         "nemesis_and_lone_info": prepared.ignored},
            "options": jsonable(self.options),
            "elapsed": round(time.monotonic() - started, 6),
        }
        result["explanation"] = explain_text(result)
        return result

    @staticmethod
    def _faults(history, prepared, clock: str) -> list:
        """The fault periods on `clock`; none, without a pass over the history, when
        prepare met no nemesis op (it counts them among the ops it ignored)."""
        return fault_periods(history, clock) if prepared.ignored else []

    def _write_pages(self, out_dir, history, prepared, outcomes, failures, faults) -> None:
        keys = prepared.keys
        folder = os.path.join(out_dir, "linear")
        os.makedirs(folder, exist_ok=True)
        faults = {"time": faults, "position": self._faults(history, prepared, "position")}
        used: set[str] = set()
        nodes: dict = {}  # each client process's node, as the runner recorded it
        for op in history:
            if op.get("node") is not None and op.get("process") not in nodes:
                nodes[op.get("process")] = op["node"]
        for key, failure in failures.items():
            stem = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:100] or "key"
            name, n = stem, 1
            while name in used:
                n += 1
                name = f"{stem}-{n}"
            used.add(name)
            path = os.path.join(folder, name + ".html")
            page = render_failure(key, keys[key], self.model, outcomes[key], failure, self.model_name,
                                  faults, nodes)
            with open(path, "w", encoding="utf-8") as f:
                f.write(page)
            failure["html"] = path
