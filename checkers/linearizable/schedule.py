"""Deciding many keys: in what order, how far each, and in how many processes.

Keys are independent (P-compositionality), so one invalid key makes the history invalid.
A key's search can take a thousand times longer than another's, and the one that would
show the history invalid may come last; so every key first gets a slice of FIRST_SLICE
configurations, smallest keys first, and only then do the undecided ones run to the end,
one after another. Once some key is known not to be linearizable, the others get no more
than AFTER_FAILURE configurations each: enough to report their own cheap failures, not
enough for a hard key to delay a verdict that is already certain (with first_failure,
none: the check stops at the first failure, as Porcupine's plain check does). The
searches are generators, so a paused key resumes where it stopped and no work is
repeated.

With many keys and many ops, keys are shared among forked worker processes (each one
runs the same schedule on its keys, and they tell each other about failures through an
Event). Forking is what makes it pay: the workers inherit the calls instead of receiving
them pickled. A worker that dies (killed for memory, say) leaves its keys "unknown".
"""
from __future__ import annotations

import multiprocessing
import os
import threading
from typing import Any

from .search import CHECK_EVERY, Budget, Outcome, searching

FIRST_SLICE = 1 << 16
AFTER_FAILURE = 50_000
NOT_SEARCHED = ("not decided: the history is already known not to be linearizable (another key), "
                "so the search stopped here")
# Below this, starting processes costs more than it saves. With the walk in C (_walk.c)
# searching is a small part of a check: on bench/linearizability.py's 100,000-op history
# (99,650 calls) two workers took 0.14 s, one process 0.12 s (the limit was 20,000 when
# the walk was Python's).
PARALLEL_MIN_CALLS = 250_000


def decide(keys: dict[str, list], model, budget: Budget, processes: int | None = None,
           first_failure: bool = False) -> dict[str, Outcome]:
    """Search every key, each within `budget`; `processes` (None: as many as pay, on
    the CPUs left idle; 1: never fork) bounds the worker processes. first_failure: no
    key searches on once one has failed."""
    names = sorted(keys, key=lambda k: len(keys[k]))
    workers = _worker_count(keys, processes)
    after = 0 if first_failure else AFTER_FAILURE   # 0: the first failure stops every search
    if workers <= 1:
        return _decide_here(names, keys, model, budget, threading.Event(), after)
    return _decide_forked(names, keys, model, budget, workers, after)


def _worker_count(keys: dict[str, list], processes: int | None) -> int:
    if processes is not None and processes <= 1:
        return 1
    if len(keys) < 2 or sum(len(c) for c in keys.values()) < PARALLEL_MIN_CALLS:
        return 1
    # Forking a process with other threads running can copy a lock mid-use into the
    # child; keep to one process then.
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if processes is None:
        processes = _idle_cpus(cpus)
    return max(1, min(cpus, len(keys), processes))


def _idle_cpus(cpus: int) -> int:
    """CPUs nobody else is using, by the 1-minute load average (which counts this
    process): a worker on a busy CPU only takes turns with what runs there, and its
    start-up (the fork, the pages it then copies) is lost. Measured on the 100,000-op
    history of bench/linearizability.py at load 2.6 on 2 CPUs: 0.87-1.1 s with two
    workers, 0.65-0.83 s in one process."""
    try:
        busy = max(0.0, os.getloadavg()[0] - 1.0)
    except (AttributeError, OSError):
        return cpus
    return max(1, int(cpus - busy + 0.5))


def _decide_here(names, keys, model, budget, failed, after=AFTER_FAILURE) -> dict[str, Outcome]:
    results: dict[str, Outcome] = {}
    running = {}
    # Stopping at the first failure, a cheap failure should not wait behind a hard key:
    # every key gets a short first slice (as Porcupine's goroutines all start at once).
    first_slice = FIRST_SLICE if after else CHECK_EVERY
    for name in names:
        if failed.is_set() and not after:
            results[name] = Outcome("unknown", 0, NOT_SEARCHED)
            continue
        steps = searching(keys[name], model, budget)
        outcome, count = _advance(steps, first_slice, failed, after)
        if outcome is None:
            running[name] = steps, count
        else:
            results[name] = outcome
            if outcome.valid is False:
                failed.set()
    for name, (steps, count) in running.items():
        if failed.is_set() and not after:
            steps.close()
            results[name] = Outcome("unknown", count, NOT_SEARCHED)
            continue
        outcome, count = _advance(steps, None, failed, after)
        if outcome is None:
            steps.close()
            outcome = Outcome("unknown", count, NOT_SEARCHED)
        results[name] = outcome
        if outcome.valid is False:
            failed.set()
    return results


def _advance(steps, until: int | None, failed, after=AFTER_FAILURE) -> tuple[Outcome | None, int]:
    """Run a search until it ends (its Outcome), or until `until` configurations, or
    `after` once some key failed (None: paused there); and the count so far."""
    count = 0
    while True:
        try:
            count = next(steps)
        except StopIteration as done:
            return done.value, count
        if until is not None and count >= until:
            return None, count
        if count >= after and failed.is_set():
            return None, count


def _decide_forked(names, keys, model, budget, workers, after) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    failed = ctx.Event()
    shares: list[list[str]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for name in reversed(names):  # biggest first, each to the least loaded worker
        w = loads.index(min(loads))
        shares[w].append(name)
        loads[w] += len(keys[name])
    procs = []
    try:
        for share in shares:
            reader, writer = ctx.Pipe(duplex=False)
            share.sort(key=lambda k: len(keys[k]))
            proc = ctx.Process(target=_worker, daemon=True,
                               args=(share, keys, model, budget, failed, writer, after))
            proc.start()
            writer.close()
            procs.append((proc, reader, share))
        results: dict[str, Any] = {}
        for proc, reader, share in procs:
            try:
                answer = reader.recv()
                if isinstance(answer, BaseException):
                    raise answer
                results.update(answer)
            except EOFError:
                proc.join()
                for name in share:
                    results[name] = Outcome("unknown", 0, f"the worker process checking this key "
                                                          f"died (exit code {proc.exitcode})")
            finally:
                reader.close()
        return results
    finally:
        for proc, _, _ in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _worker(share, keys, model, budget, failed, writer, after) -> None:
    try:
        try:
            answer: Any = _decide_here(share, keys, model, budget, failed, after)
        except Exception as e:  # noqa: BLE001 - a model's bug, re-raised in the parent
            answer = RuntimeError(f"checking keys {', '.join(share)}: {type(e).__name__}: {e}")
        writer.send(answer)
    finally:
        writer.close()
