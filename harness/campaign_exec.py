"""Executors: who runs a campaign's runs, and where.

- SerialExecutor (the default): one run after another in this process, with live progress.
- PoolExecutor (`--parallel N`): N runs at once on this machine, each in a process of its
  own with its own cluster (a random test id, so its own namespaces; a subnet no other
  live test on this host holds, see control/local.py).
- DaskExecutor (`--dask tcp://scheduler:8786`): each run is one task on a Dask cluster;
  a worker runs it on its host with that host's local backend (or the backend the entry
  names) and ships the run directory back into the campaign's store. The scheduler is
  told to allow one failure per task, so a run whose worker dies mid-test is retried once,
  on another worker; before each run a worker removes the leftovers of dead tests on its
  host (control/clean.py), so a worker that died there is cleaned up by the next run.

Every executor calls `finished(run, record)` in the campaign's process as each run ends
(records are plain dicts, see `record_of`), and returns False when stopped by a signal
before every run ended; a run stopped midway is not reported (resuming runs it again).
"""
from __future__ import annotations

import io
import logging
import os
import shutil
import signal
import socket
import tarfile
import tempfile
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Callable, Protocol

from core.errors import SetupError

if TYPE_CHECKING:
    from harness.campaign import CampaignRun

log = logging.getLogger("tectonic.campaign")

Finished = Callable[["CampaignRun", dict], None]


class Executor(Protocol):
    def describe(self) -> str:
        """A few words for the campaign's first line: "4 at a time on this machine"."""

    def run(self, runs: list[CampaignRun], finished: Finished) -> bool:
        """Run every run, calling finished(run, record) as each ends; False when stopped."""


# ----------------------------------------------------------------- records

def record_of(spec: dict, expect: str, outcome: Any, seconds: float) -> dict:
    """What the campaign keeps of one run: verdict, where it is stored, which anomalies,
    its seed and time to detection (results.json's `detection`, see checkers/detection)."""
    from harness.report.summary import anomaly_types, verdict_word
    verdict = verdict_word(outcome.valid)
    results = getattr(outcome, "results", None)
    results = results if isinstance(results, dict) else {}
    return {"expect": expect, "spec": spec, "verdict": verdict,
            "passed": verdict == expect, "run_dir": outcome.run_dir,
            "anomalies": anomaly_types(results or None), "seed": results.get("seed", spec.get("seed")),
            "detection": results.get("detection"), "seconds": seconds}


def error_record(spec: dict, expect: str, error: BaseException | str, seconds: float,
                 trace: str = "") -> dict:
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return {"expect": expect, "spec": spec, "verdict": "error", "passed": False,
            "run_dir": None, "anomalies": [], "seed": spec.get("seed"), "detection": None,
            "error": message, "traceback": trace, "seconds": seconds}


def _run_test(spec: dict, expect: str, stop: threading.Event | None, progress: bool) -> dict:
    """One run through harness.run.run_test; never raises for a broken run."""
    from harness import run as run_module
    from harness.spec import resolve_spec
    started = time.monotonic()
    try:
        resolved = resolve_spec(spec)
        if progress:
            from harness.progress import Progress
            with Progress(resolved) as shown:
                outcome = run_module.run_test(resolved, progress=shown, stop=stop)
        else:
            outcome = run_module.run_test(resolved, stop=stop)
    except Exception as e:  # noqa: BLE001 - one broken run must not end the campaign
        return error_record(spec, expect, e, time.monotonic() - started, traceback.format_exc())
    return record_of(spec, expect, outcome, time.monotonic() - started)


# ----------------------------------------------------------------- serial

class SerialExecutor:
    """One run at a time in this process. `runner(spec) -> outcome` replaces run_test."""

    def __init__(self, runner: Callable[[dict], Any] | None = None):
        self.runner = runner

    def describe(self) -> str:
        return "one at a time"

    def run(self, runs: list[CampaignRun], finished: Finished) -> bool:
        stop = threading.Event()
        for item in runs:
            if self.runner is None:
                record = _run_test(dict(item.spec), item.expect, stop, progress=True)
            else:
                record = self._with_runner(item)
            if stop.is_set():
                return False
            finished(item, record)
        return True

    def _with_runner(self, item: CampaignRun) -> dict:
        started = time.monotonic()
        try:
            outcome = self.runner(dict(item.spec))
        except Exception as e:  # noqa: BLE001
            return error_record(item.spec, item.expect, e, time.monotonic() - started, traceback.format_exc())
        return record_of(item.spec, item.expect, outcome, time.monotonic() - started)


# ----------------------------------------------------------------- local pool

class PoolExecutor:
    """`parallel` runs at once, each in a fresh process (forkserver: no threads or locks
    of the campaign's process are inherited)."""

    def __init__(self, parallel: int):
        if parallel < 1:
            raise ValueError(f"parallel must be at least 1, got {parallel}")
        self.parallel = parallel

    def describe(self) -> str:
        return f"{self.parallel} at a time on this machine"

    def run(self, runs: list[CampaignRun], finished: Finished) -> bool:
        import multiprocessing
        context = multiprocessing.get_context("forkserver")
        pool = ProcessPoolExecutor(max_workers=self.parallel, mp_context=context,
                                   initializer=_ignore_sigint)
        futures = {pool.submit(_pool_task, dict(item.spec), item.expect): item for item in runs}
        stopped = False
        try:
            pending = set(futures)
            while pending:
                try:
                    for future in as_completed(pending):
                        pending.discard(future)
                        self._report(futures[future], future, finished)
                except KeyboardInterrupt:
                    # The running children got the same SIGINT (one process group): each
                    # stops its test gracefully and reports; queued runs never start.
                    stopped = True
                    for future in pending:
                        future.cancel()
                    pending = {f for f in pending if not f.cancelled()}
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return not stopped

    @staticmethod
    def _report(item: CampaignRun, future, finished: Finished) -> None:
        try:
            record = future.result()
        except BrokenProcessPool as e:
            record = error_record(item.spec, item.expect, f"the process running it died ({e})", 0.0)
        if not record.pop("stopped", False):
            finished(item, record)


def _ignore_sigint() -> None:
    # Between runs a child has nothing to stop; during one, run_test handles SIGINT itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool_task(spec: dict, expect: str) -> dict:
    stop = threading.Event()
    record = _run_test(spec, expect, stop, progress=False)
    record["stopped"] = stop.is_set()
    return record


# ----------------------------------------------------------------- Dask

class DaskExecutor:
    """Runs as tasks on the Dask cluster whose scheduler is at `address`.

    shared_store: the workers see the campaign's store at the same path (a shared file
    system) and write there; otherwise (the default) each run is stored on the worker in a
    temporary store, shipped back as a tar archive and unpacked into the campaign's store.
    """

    CONNECT_TIMEOUT = 10

    def __init__(self, address: str, shared_store: bool = False):
        self.address = address
        self.shared_store = shared_store

    def describe(self) -> str:
        return f"on the Dask cluster at {self.address}"

    def run(self, runs: list[CampaignRun], finished: Finished) -> bool:
        try:
            from distributed import Client, KilledWorker, as_completed as dask_completed
        except ImportError:
            raise SetupError("--dask needs Dask: install the extra (pip install 'tectonic[dask]')") from None
        try:
            client = Client(self.address, timeout=self.CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise SetupError(f"cannot reach the Dask scheduler at {self.address}: {e}") from None
        try:
            # "Retried once": a task whose worker died once runs again elsewhere; twice, it
            # is given up (KilledWorker) instead of taking a third worker down with it.
            client.run_on_scheduler(_allow_one_failure)
            stamp = f"{os.getpid()}-{time.time_ns()}"
            futures = {client.submit(dask_task, dict(item.spec), item.expect, self.shared_store,
                                     key=f"tectonic-run-{item.key}-{stamp}", pure=False): item
                       for item in runs}
            try:
                for future in dask_completed(list(futures), loop=client.loop):
                    item = futures[future]
                    try:
                        record = future.result()
                    except KilledWorker:
                        record = error_record(item.spec, item.expect,
                                              "the Dask workers running it died twice", 0.0)
                    except Exception as e:  # noqa: BLE001 - the task itself never raises
                        record = error_record(item.spec, item.expect, e, 0.0)
                    finished(item, self._unpack(item, record))
            except KeyboardInterrupt:
                client.cancel(list(futures))
                return False
        finally:
            client.close()
        return True

    def _unpack(self, item: CampaignRun, record: dict) -> dict:
        archive = record.pop("archive", None)
        if archive is None:
            return record
        store = item.spec["store"]
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            _extract_data(tar, store)
        record["run_dir"] = os.path.join(store, record.pop("run_dir_in_store"))
        _rewrite_run_dir(record["run_dir"])
        return record


def _extract_data(tar: tarfile.TarFile, dest: str) -> None:
    """Unpack a run's archive from another host as plain files and folders under `dest`:
    tarfile's "data" filter where this Python has it (3.11.4 and later; Debian bookworm's
    3.11.2 has not), else the same refusals made here: absolute or escaping names, links,
    devices; and no set-id or other-writable modes."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    members = tar.getmembers()
    for m in members:
        name = os.path.normpath(m.name)
        if os.path.isabs(name) or name == ".." or name.startswith(".." + os.sep) or not (m.isfile() or m.isdir()):
            raise tarfile.TarError(f"refusing archive member {m.name!r} (not a plain file under the store)")
        m.mode &= 0o755
    tar.extractall(dest, members)


def _allow_one_failure(dask_scheduler) -> None:
    dask_scheduler.allowed_failures = 1


def dask_task(spec: dict, expect: str, shared_store: bool) -> dict:
    """One run on a Dask worker (a module-level function, so workers can import it)."""
    from distributed import get_worker
    from harness.control.clean import clean
    host = f"{socket.gethostname()} {get_worker().address}"
    try:
        # A worker that died here mid-test left its cluster behind; its controller is gone.
        cleaned = clean(docker=False)
    except Exception as e:  # noqa: BLE001 - a failed clean is worth a line, not the run
        cleaned = [f"clean failed: {e}"]
    store = spec["store"] if shared_store else tempfile.mkdtemp(prefix="tectonic-dask-store-")
    try:
        record = _run_test({**spec, "store": store}, expect, None, progress=False)
        record["spec"] = spec
        if not shared_store and record.get("run_dir"):
            record["run_dir_in_store"] = os.path.relpath(record["run_dir"], store)
            record["archive"] = _archive(store, record["run_dir_in_store"])
    finally:
        if not shared_store:
            shutil.rmtree(store, ignore_errors=True)
    record.update(host=host, cleaned=cleaned)
    return record


def _archive(store: str, relative: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(os.path.join(store, relative), arcname=relative)
    return buffer.getvalue()


def _rewrite_run_dir(run_dir: str) -> None:
    """results.json names the directory it was written in; after shipping that is here."""
    from harness.store import read_results, write_results
    try:
        results = read_results(run_dir)
    except (OSError, ValueError):
        return
    results["run_dir"] = run_dir
    write_results(run_dir, results)
