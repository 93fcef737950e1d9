"""Benchmark of the Elle checker on list-append histories.

Histories of 10k and 100k transactions (1M with --full) come from a strictly serializable
simulated store (1-5 micro-ops per transaction, 100 active keys, 10 concurrent clients),
and from the same store with planted stale reads (anomalies the checker must find). Each
size runs in its own process, so peak memory (maxrss) is that size's alone; it includes
the history itself, as when `tectonic check` loads a file.

    .venv/bin/python bench/elle.py            # 10k and 100k, about a minute
    .venv/bin/python bench/elle.py --full     # also 1M (a few minutes)

Headline lines: `<name>: <value> <unit> (target <target>)`.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ELLE_TXNS_PER_S = (100_000, 160_000)   # Elle itself, on the JVM (its README and paper)
STALE_RATE = 0.002                      # planted: share of reads that miss the last write


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


def worker(n: int, mode: str) -> dict:
    from checkers.elle import check
    gc.disable()
    t0 = time.perf_counter()
    history = generate(n, seed=n, stale_rate=STALE_RATE if mode == "planted" else 0.0)
    generated = time.perf_counter() - t0
    rss_history = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gc.enable()
    t1, c1 = time.perf_counter(), time.process_time()
    result = check(history, "list-append", consistency_models=["strict-serializable"])
    seconds, cpu = time.perf_counter() - t1, time.process_time() - c1
    return {"n": n, "mode": mode, "generate_s": round(generated, 2), "check_s": round(seconds, 3),
            "check_cpu_s": round(cpu, 3), "txns_per_s": round(n / cpu),
            "rss_history_mb": round(rss_history),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "valid": result["valid"], "anomaly_types": result["anomaly-types"],
            "cyclic_components": result["stats"]["cyclic-components"]}


def run(n: int, mode: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", str(n), mode],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"worker {n} {mode} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="also run 1,000,000 transactions")
    parser.add_argument("--worker", nargs=2, metavar=("N", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(int(args.worker[0]), args.worker[1])))
        return
    sizes = [10_000, 100_000] + ([1_000_000] if args.full else [])
    results = {}
    print("Times are CPU seconds of the checking process (wall time in brackets: the machine\n"
          "may be shared); txns/s from CPU time; peak RSS includes the history (in brackets).")
    print(f"{'txns':>9} {'history':>12} {'check s':>8} {'(wall)':>8} {'txns/s':>8} "
          f"{'rss MB':>7} {'(history)':>9}  verdict")
    for n in sizes:
        for mode in ("serializable", "planted"):
            r = run(n, mode)
            results[(n, mode)] = r
            print(f"{n:>9} {mode:>12} {r['check_cpu_s']:>8.2f} {r['check_s']:>8.2f} "
                  f"{r['txns_per_s']:>8} {r['peak_rss_mb']:>7} {r['rss_history_mb']:>9}  "
                  f"{r['valid']} {' '.join(r['anomaly_types'])}", flush=True)
            if mode == "serializable" and r["valid"] is not True:
                raise SystemExit("a serializable history was judged invalid")
            if mode == "planted" and r["valid"] is not False:
                raise SystemExit("planted anomalies were not found")
    rate = results[(100_000, "serializable")]["txns_per_s"]
    low, high = ELLE_TXNS_PER_S
    print(f"\nElle itself checks {low:,}-{high:,} txns/s; this checker "
          f"{rate:,} txns/s on 100k serializable: {rate / high:.2f}-{rate / low:.2f} of Elle")
    print(f"elle-100k-check-time: {results[(100_000, 'serializable')]['check_cpu_s']:.2f} s "
          f"(target < 5 s)")
    print(f"elle-100k-planted-check-time: {results[(100_000, 'planted')]['check_cpu_s']:.2f} s "
          f"(target < 5 s)")
    print(f"elle-throughput-vs-elle: {rate / low:.2f} x (target 1.0 x of Elle's "
          f"{low:,} txns/s)")
    if args.full:
        peak = max(results[(1_000_000, m)]["peak_rss_mb"] for m in ("serializable", "planted"))
        print(f"elle-1M-peak-memory: {peak} MB (target < 2048 MB)")


if __name__ == "__main__":
    main()
