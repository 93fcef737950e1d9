"""Benchmark of the Elle checker on list-append histories: both engines, medians of runs.

Histories of 100k transactions (and 1M with --full) come from a strictly serializable
simulated store (1-5 micro-ops per transaction, 100 active keys, 10 concurrent clients),
and from the same store with planted stale reads (anomalies the checker must find). They
are written once as history.jsonl files into a temporary folder (removed at the end);
every measurement is a fresh child process, so its peak memory (maxrss) is its own.

Per engine, two ways in:
- `list`: the history is read into dicts first (core.history.read_jsonl), only `check`
  is timed (the figure earlier versions of this benchmark printed);
- `file`: `check_path` on the file, reading included (what `tectonic check` would pay).
The reference engine is TxnHistory + ListAppend (a dict per op); the columnar engine is
checkers/elle/columnar.py. Times are CPU seconds of the child (the machine may be shared,
wall time is printed too); txns/s = transactions / median CPU seconds.

    .venv/bin/python bench/elle.py              # 100k, 3 runs each, about two minutes
    .venv/bin/python bench/elle.py --full       # also the 1M check's peak memory
    .venv/bin/python bench/elle.py --runs 5

Headline lines: `<name>: <value> <unit> (target <target>)`.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ELLE_TXNS_PER_S = 100_000     # Elle itself, on the JVM (its README: ~100k txns/s)
STALE_RATE = 0.002            # planted: share of reads that miss the last write
MEMORY_LIMIT_MB = 1024        # the 1M-transaction check's target peak


def generate(n: int, seed: int, stale_rate: float, keys: int = 100, concurrency: int = 10,
             max_writes: int = 32) -> list[dict]:
    """A strictly serializable list-append history: each transaction takes effect
    atomically at one moment between its invocation and completion. With `stale_rate`,
    some reads see a key as it was before its last committed append (a planted anomaly)."""
    rng = random.Random(seed)
    active = list(range(keys))
    next_key = keys
    lists: dict[int, list] = {}
    before_last: dict[int, int] = {}     # key -> length before its last transaction's appends
    appended: dict[int, int] = {}
    history: list[dict] = []
    pending: dict[int, list] = {}        # process -> [invocation mops, executed result or None]
    idle = list(range(concurrency))
    started = 0
    while started < n or pending:
        if started < n and idle and (not pending or rng.random() < 0.5):
            p = idle.pop(rng.randrange(len(idle)))
            mops = []
            for _ in range(rng.randint(1, 5)):
                k = rng.choice(active)
                if rng.random() < 0.5:
                    mops.append(["r", k, None])
                else:
                    count = appended.get(k, 0) + 1
                    appended[k] = count
                    if count >= max_writes:
                        active[active.index(k)] = next_key
                        next_key += 1
                    mops.append(["append", k, count])
            pending[p] = [mops, None]
            history.append({"index": len(history), "type": "invoke", "process": p, "f": "txn",
                            "value": mops})
            started += 1
            continue
        p = rng.choice(list(pending))
        mops, result = pending[p]
        if result is None:
            result = []
            touched = set()
            for mop in mops:
                k = mop[1]
                lst = lists.setdefault(k, [])
                if mop[0] == "append":
                    if k not in touched:
                        before_last[k] = len(lst)
                        touched.add(k)
                    lst.append(mop[2])
                    result.append(mop)
                elif stale_rate and k not in touched and rng.random() < stale_rate:
                    result.append(["r", k, lst[:before_last.get(k, 0)]])
                else:
                    result.append(["r", k, lst[:]])
            pending[p][1] = result
            continue
        del pending[p]
        idle.append(p)
        history.append({"index": len(history), "type": "ok", "process": p, "f": "txn",
                        "value": result})
    return history


def worker(path: str, n: int, engine: str, source: str) -> dict:
    from checkers.elle import check, check_path
    from core.history import read_jsonl
    gc.disable()
    t0, c0 = time.perf_counter(), time.process_time()
    if source == "list":
        history = read_jsonl(path)
        t0, c0 = time.perf_counter(), time.process_time()
        result = check(history, "list-append", consistency_models=["strict-serializable"],
                       engine=engine)
    else:
        result = check_path(path, "list-append", consistency_models=["strict-serializable"],
                            engine=engine)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"n": n, "check_s": seconds, "check_cpu_s": cpu,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "valid": result["valid"], "anomaly_types": result["anomaly-types"],
            "engine": result["stats"]["engine"]}


def run(path: str, n: int, engine: str, source: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", path, str(n), engine, source],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"worker {n} {engine} {source} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(path: str, n: int, mode: str, engine: str, source: str, runs: int) -> dict:
    results = [run(path, n, engine, source) for _ in range(runs)]
    for r in results:
        if r["engine"] != engine:
            raise SystemExit(f"{engine} engine asked for, {r['engine']} ran")
        if (mode == "serializable") != (r["valid"] is True):
            raise SystemExit(f"{mode} history judged {r['valid']} {r['anomaly_types']}")
    cpu = statistics.median(r["check_cpu_s"] for r in results)
    return {"cpu": cpu, "wall": statistics.median(r["check_s"] for r in results),
            "txns_per_s": n / cpu, "rss": statistics.median(r["peak_rss_mb"] for r in results),
            "all_cpu": sorted(r["check_cpu_s"] for r in results),
            "verdict": f"{results[0]['valid']} {' '.join(results[0]['anomaly_types'])}"}


def write_history(folder: str, n: int, mode: str) -> str:
    """Generated in a child process: Linux carries a process's peak RSS over fork and
    exec, so a parent that had held a million dicts would inflate every worker's figure."""
    path = os.path.join(folder, f"{mode}-{n}.jsonl")
    subprocess.run([sys.executable, __file__, "--generate", path, str(n), mode], check=True,
                   timeout=3600)
    return path


def generate_file(path: str, n: int, mode: str) -> None:
    from core.history import write_jsonl
    write_jsonl(generate(n, seed=n, stale_rate=STALE_RATE if mode == "planted" else 0.0), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="also check 1,000,000 transactions")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--worker", nargs=4, metavar=("PATH", "N", "ENGINE", "SOURCE"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=3, metavar=("PATH", "N", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate_file(args.generate[0], int(args.generate[1]), args.generate[2])
        return
    if args.worker:
        path, n, engine, source = args.worker
        print(json.dumps(worker(path, int(n), engine, source)))
        return
    if args.runs < 1:
        print("bench/elle.py: --runs must be at least 1", file=sys.stderr)
        raise SystemExit(254)
    folder = tempfile.mkdtemp(prefix="tectonic-bench-elle-")
    try:
        report(folder, args.full, args.runs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(folder: str, full: bool, runs: int) -> None:
    print(f"Medians of {runs} runs, each a fresh process. CPU seconds of the check (wall in\n"
          f"brackets: the machine may be shared); txns/s from CPU time; load: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}.")
    print(f"{'txns':>9} {'history':>12} {'engine':>9} {'input':>5} {'check s':>8} {'(wall)':>7} "
          f"{'txns/s':>8} {'x Elle':>6} {'rss MB':>7}  runs (cpu s)  verdict")
    results = {}
    sizes = [(100_000, runs)] + ([(1_000_000, runs)] if full else [])
    for n, r in sizes:
        for mode in ("serializable", "planted"):
            if n > 100_000 and mode == "planted":
                continue   # the 1M figure is memory; one history shows it
            path = write_history(folder, n, mode)
            for engine in ("reference", "columnar"):
                for source in ("list", "file"):
                    m = measure(path, n, mode, engine, source, r)
                    results[(n, mode, engine, source)] = m
                    print(f"{n:>9} {mode:>12} {engine:>9} {source:>5} {m['cpu']:>8.2f} "
                          f"{m['wall']:>7.2f} {m['txns_per_s']:>8.0f} "
                          f"{m['txns_per_s'] / ELLE_TXNS_PER_S:>6.2f} {m['rss']:>7.0f}  "
                          f"{' '.join(f'{x:.2f}' for x in m['all_cpu'])}  {m['verdict']}",
                          flush=True)
            os.remove(path)
    print(f"\nElle itself: about {ELLE_TXNS_PER_S:,} txns/s. Before = reference engine, "
          f"after = columnar engine (the default for list-append).")
    for mode in ("serializable", "planted"):
        for source in ("list", "file"):
            before = results[(100_000, mode, "reference", source)]["txns_per_s"]
            after = results[(100_000, mode, "columnar", source)]["txns_per_s"]
            print(f"elle-100k-{mode}-{source}: {before:,.0f} -> {after:,.0f} txns/s, "
                  f"{before / ELLE_TXNS_PER_S:.2f} -> {after / ELLE_TXNS_PER_S:.2f} x Elle "
                  f"(target >= 1.0 x)")
    if full:
        before = results[(1_000_000, "serializable", "reference", "list")]["rss"]
        after = results[(1_000_000, "serializable", "columnar", "file")]["rss"]
        print(f"elle-1M-peak-memory: {before:,.0f} MB (reference, history read as dicts) -> "
              f"{after:,.0f} MB (columnar, check_path) (target < {MEMORY_LIMIT_MB} MB)")


if __name__ == "__main__":
    main()
