"""One test, start to finish: the flow of ARCHITECTURE.md.

spec -> nodes -> target up -> runner (workload + nemesis schedule) -> heal, recover, final
reads -> teardown (always) -> checkers -> store. Whatever goes wrong, the history recorded
so far is on disk, teardown runs, and results.json is written for what was recorded.
"""
from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from core.errors import SetupError, SpecError, UserError
from checkers.detection import first_blamed
from checkers.exceptions import UnhandledExceptionsChecker
from checkers.result import UNKNOWN, run_checkers
from checkers.stats import StatsChecker
from nemesis.healing import HealingNemesis

from core.history import HistoryWriter, load_history, validate

from .cluster_watch import ClusterWatch
from .control.crash_logs import write_manifest
from .plugins import make_workload, target_class
from .protocols import HealthCheck, LogFiles, NodeNeeds, NoopNemesis, Pause
from .runner import Runner
from .schedule import test_generator
from .spec import dump_spec, resolve_spec
from .store import new_run_dir, write_results

log = logging.getLogger("tectonic")

EXIT = {True: 0, False: 1, UNKNOWN: 2}
# A run stopped by a signal exits as shells expect of an interrupted command, whatever the
# part that was recorded checks out as; results.json says "interrupted" and has the verdict.
INTERRUPTED = 130
# A run whose cluster was removed from under it has no verdict: an error the user must
# look into, not a bug in tectonic.
ABORTED = 254




@dataclass
class RunOutcome:
    valid: Any
    run_dir: str
    results: dict

    @property
    def exit_code(self) -> int:
        if self.results.get("aborted"):
            return ABORTED
        if self.results.get("interrupted"):
            return INTERRUPTED
        return EXIT.get(self.valid, 2)


def run_test(spec: dict, *, progress=None, cluster_factory: Callable | None = None,
             target_factory: Callable | None = None, stop: threading.Event | None = None) -> RunOutcome:
    """Run one test and store it. `cluster_factory(spec, work_dir, needs)` and
    `target_factory(spec, nodes)` replace the real backend and target in fast tests."""
    spec = resolve_spec(spec)
    target_cls = target_class(spec["target"])
    # Everything that can be refused from the spec alone is, before anything exists: no
    # run dir, no work dir, no node for an input the user has to fix.
    workload = make_workload(spec)
    work_dir = tempfile.mkdtemp(prefix=f"tectonic-{spec['name']}-")
    try:
        cluster = (cluster_factory or _make_cluster)(spec, work_dir, target_cls.needs_for(spec))  # checks options, creates nothing
        run_dir = _new_run_dir(spec)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    dump_spec(spec, os.path.join(run_dir, "spec.yaml"))
    log_path = os.path.join(run_dir, "tectonic.log")
    handler = _log_to(log_path)
    stop = stop or threading.Event()
    restore = _stop_on_signals(stop)
    history = HistoryWriter(os.path.join(run_dir, "history.jsonl"), autoflush=False)
    phase = progress.phase if progress else (lambda name: log.info("phase: %s", name))
    results: dict | None = None
    watch = None
    runner = None
    try:
        log.info("test %s, seed %d, run dir %s", spec["name"], spec["seed"], run_dir)
        _warn_leftovers()
        log.info("work dir %s (the nodes' data; `tectonic clean` removes it if this controller dies)", work_dir)
        nodes, target, nemesis, disks = [], None, None, None
        try:
            phase("setup")
            nodes = cluster.create()
            target = (target_factory or target_cls)(spec, nodes)
            # Should this controller die, `tectonic clean` collects the logs (crash_logs.py).
            write_manifest(work_dir, run_dir, {n.name: _log_files(target, n) for n in nodes})
            disks = _mount_disks(spec, nodes, target, cluster)
            _start_target(target, nodes)
            nemesis, faults = _make_nemesis(spec, nodes, target, cluster, disks)
            phase("running")
            with ClusterWatch(cluster, stop) as watch:
                runner = Runner(generator=test_generator(spec, workload, faults), target=target,
                                nemesis=nemesis, nodes=nodes, history=history,
                                concurrency=spec["concurrency"], op_timeout=spec["op_timeout"],
                                seed=spec["seed"], on_op=progress.op if progress else None,
                                stop=stop)
                runner.run()
            if stop.is_set() and not watch.gone and not runner.aborted:
                log.warning("stopped early by a signal: checking what was recorded")
        finally:
            history.flush()
            phase("teardown")
            _teardown(spec, cluster, nodes, target, nemesis, run_dir, disks)
            shutil.rmtree(work_dir, ignore_errors=True)
        phase("checking")
        history.close()
        # A vanished cluster, or a fault that had no effect: the history tests nothing
        # the user asked for, so it is stored but not judged.
        aborted = (watch.message if watch is not None and watch.gone
                   else runner.aborted if runner is not None else None)
        if aborted:
            results = {"valid": UNKNOWN, "aborted": aborted,
                       "error": f"{aborted}: the history is stored, nothing was checked",
                       "checkers": {}}
        else:
            results = check_history(stored_history(run_dir), workload.checkers, run_dir)
            if stop.is_set():
                results["interrupted"] = True
    except Exception as e:
        # The whole story goes to the run's log; the user sees one line pointing there.
        log.error("test failed: %s", e, exc_info=not isinstance(e, UserError))
        e.log_path = log_path
        raise
    finally:
        history.close()
        if results is None:
            results = {"valid": UNKNOWN, "error": "the test did not finish; see tectonic.log",
                       "checkers": {}}
        results["run_dir"] = run_dir
        results["seed"] = spec["seed"]
        write_results(run_dir, results)
        _write_report(run_dir)
        restore()
        logging.getLogger("tectonic").removeHandler(handler)
        handler.close()
    return RunOutcome(results["valid"], run_dir, results)


def stored_history(run_dir: str):
    """The history as stored, decoded: the checkers judge what the file holds (what
    `tectonic analyze` reads later), never in-memory ops that skipped the encoder."""
    history = load_history(os.path.join(run_dir, "history.jsonl"))
    validate(history)
    return history


def check_history(ops: list[dict], checkers: dict, run_dir: str | None) -> dict:
    every = {"stats": StatsChecker(), **checkers, "unhandled-exceptions": UnhandledExceptionsChecker()}
    results = run_checkers(every, ops, {"out_dir": run_dir})
    if results["valid"] is False:
        results["detection"] = first_blamed(ops, results)
    return results


# ----------------------------------------------------------------- the parts

def _make_cluster(spec: dict, work_dir: str, needs: NodeNeeds):
    """The backend's cluster: each module under harness/control named in spec.BACKENDS
    has `make_cluster(spec, work_dir, needs)`, returning an object with create() -> nodes
    (each providing what the target's NodeNeeds ask) and destroy()."""
    import importlib
    try:
        module = importlib.import_module(f"harness.control.{spec['backend']}")
    except ImportError as e:
        raise SetupError(f"backend {spec['backend']!r} is not available: {e}") from None
    return module.make_cluster(spec, work_dir, needs)


def _new_run_dir(spec: dict) -> str:
    try:
        return new_run_dir(spec["store"], spec["name"])
    except OSError as e:
        raise SetupError(f"store {spec['store']!r}: cannot create the run directory: "
                         f"{e.strerror}") from None


def _start_target(target, nodes: list) -> None:
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        for f in [pool.submit(target.setup, n) for n in nodes]:
            f.result()
    if isinstance(target, HealthCheck):
        target.wait_healthy(nodes, timeout=60)
    log.info("target %s healthy on %s", target.name, ", ".join(n.name for n in nodes))


def _test_id(cluster):
    """The cluster's test id (names chains and mounts, for `tectonic clean`), or None."""
    return getattr(getattr(cluster, "names", None), "test_id", None)


def _mount_disks(spec: dict, nodes: list, target, cluster):
    """With the disk fault, lazy filesystems over the target's data dirs (before it
    starts, so it writes through them from its first byte); else None."""
    if "disk" not in spec["nemesis"]:
        return None
    from nemesis.disk import LazyDisks
    try:
        disks = LazyDisks(nodes, target.data_dir, _test_id(cluster) or spec["name"], spec["seed"])
    except ValueError as e:
        raise SetupError(str(e)) from None
    try:
        disks.mount()
    except BaseException:
        _attempt("unmount disks", disks.unmount)
        raise
    return disks


def _make_nemesis(spec: dict, nodes: list, target, cluster, disks=None):
    if not spec["nemesis"]:
        return HealingNemesis(NoopNemesis()), {}
    from nemesis.combined import FAULTS, make_nemesis
    try:
        inner = make_nemesis(spec["nemesis"], nodes, target, random.Random(spec["seed"]),
                             {**spec["nemesis_opts"], "interval": spec["nemesis_interval"],
                              # names the iptables chains after the test, for `tectonic clean`
                              "test_id": _test_id(cluster),
                              **({"disks": disks} if disks is not None else {})})
    except ValueError as e:
        raise SetupError(str(e)) from None
    inner.setup()
    return HealingNemesis(inner), {k: FAULTS[k] for k in spec["nemesis"]}


def _teardown(spec, cluster, nodes, target, nemesis, run_dir, disks=None) -> None:
    """Undo everything, each step on its own so one failure does not skip the rest. The
    nodes are taken down side by side (resume, collect the logs, stop the target): on
    remote hosts each step is a few round trips, and one node at a time would add them up."""
    if nemesis is not None:
        _attempt("heal", nemesis.heal)
        _attempt("nemesis teardown", nemesis.teardown)
    if target is not None and nodes:
        def down(n):
            if isinstance(target, Pause):
                _attempt(f"resume {n.name}", lambda: target.resume(n))
            _attempt(f"collect {n.name}", lambda: _collect(target, n, run_dir))
            _attempt(f"teardown {n.name}", lambda: target.teardown(n))
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            list(pool.map(down, nodes))
    if disks is not None:
        _attempt("unmount disks", disks.unmount)
    _attempt("destroy cluster", cluster.destroy)


def _attempt(what: str, step: Callable[[], None]) -> None:
    try:
        step()
    except Exception as e:  # noqa: BLE001 - keep tearing down; say what failed
        log.error("teardown: %s failed: %s", what, e)


def _log_files(target, node) -> list[str]:
    """The paths on the node that the target says are worth collecting."""
    return list(target.log_files(node)) if isinstance(target, LogFiles) else []


def _collect(target, node, run_dir: str) -> None:
    dest = os.path.join(run_dir, "nodes", node.name)
    os.makedirs(dest, exist_ok=True)
    for path in _log_files(target, node):
        try:
            node.remote.get_file(path, os.path.join(dest, os.path.basename(path)))
        except Exception as e:  # noqa: BLE001 - a missing log is worth a line, not a failure
            log.warning("could not collect %s from %s: %s", path, node.name, e)
    try:
        listing = node.remote.exec(["ls", "-laR", node.dir], timeout=10, check=False)
        with open(os.path.join(dest, "data-dir.txt"), "w") as f:
            f.write(listing.stdout)
    except Exception as e:  # noqa: BLE001
        log.warning("could not list %s on %s: %s", node.dir, node.name, e)


def _warn_leftovers() -> None:
    try:
        from .control.clean import find_leftovers
    except ImportError:
        return
    left = find_leftovers()
    if left:
        log.warning("leftovers from an earlier test (remove with `tectonic clean`): %s", "; ".join(left))


def _write_report(run_dir: str) -> None:
    try:
        from .report import write_report
    except ImportError:
        return
    try:
        write_report(run_dir)
    except Exception as e:  # noqa: BLE001 - the results are stored; a broken report is not fatal
        log.error("could not write the report: %s", e, exc_info=True)


def _log_to(path: str) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s"))
    root = logging.getLogger("tectonic")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    return handler


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM stop the test gracefully: workers stop, faults heal, the cluster is
    torn down and the results are written. A second signal still only sets the flag;
    teardown has timeouts of its own."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        if not stop.is_set():
            log.warning("got %s: stopping the test, then healing and tearing down",
                        signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore():
        for s, h in old.items():
            signal.signal(s, h)
    return restore

