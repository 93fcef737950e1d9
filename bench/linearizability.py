"""Benchmark: the linearizability checker on the conformance corpus and a big history.

  .venv/bin/python bench/linearizability.py [--repeat 3] [--ops 100000]

Measures, each file checked --repeat times and the fastest run kept (the machine is
shared; the fastest run is the one least disturbed):
- the 102 etcd logs of Porcupine's test data (cas-register, nil = absent, failed CAS =
  observed): total and worst file, parse excluded and included;
- Porcupine's kv files (c01 / c10 / c50, -ok and -bad), c50-ok especially;
- a generated history of --ops cas-register ops on 10 keys at concurrency 10, with
  timeouts (info ops), checked with independent keys (worker processes when they pay),
  and in one process for comparison.
Targets are Porcupine's (Go) times on this kind of machine, see the corpus README. Prints
the figures, the ratio of each to its target, then one headline line per target.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from checkers.linearizable import LinearizableChecker  # noqa: E402
from checkers.linearizable.simulate import register_history  # noqa: E402
from core.history import load_history  # noqa: E402

CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "conformance", "porcupine")
ETCD_TOTAL_TARGET_S = 1.2
ETCD_WORST_TARGET_S = 0.5
C50_OK_TARGET_S = 0.7
BIG_TARGET_S = 10.0


def fastest(repeat: int, fn):
    """(seconds of the fastest of `repeat` runs, the last run's value)."""
    best, value = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    return best, value


def bench_etcd(repeat: int) -> tuple[float, float, float, str]:
    with open(os.path.join(CORPUS, "expected.json")) as f:
        expected = json.load(f)["files"]
    checker = LinearizableChecker("cas-register", nil_read="absent", fail_cas="observed")
    total = total_parse = worst = 0.0
    worst_name = ""
    wrong = []
    for name, want in sorted(expected.items()):
        if not name.startswith("jepsen/") or want["linearizable"] is None:
            continue
        path = os.path.join(CORPUS, name)
        parse_s, history = fastest(repeat, lambda: load_history(path))
        check_s, result = fastest(repeat, lambda: checker.check(history, {}))
        if result["valid"] is not want["linearizable"]:
            wrong.append(name)
        total += check_s
        total_parse += check_s + parse_s
        if check_s > worst:
            worst, worst_name = check_s, name
    print(f"etcd logs: {total:.3f} s checking, {total_parse:.3f} s with parsing; "
          f"slowest {worst_name} {worst:.3f} s; wrong verdicts: {len(wrong)} {wrong}")
    return total, total_parse, worst, worst_name


def bench_kv(repeat: int) -> float:
    c50_ok = 0.0
    for name in ("c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad"):
        path = os.path.join(CORPUS, "kv", name + ".txt")
        parse_s, history = fastest(repeat, lambda: load_history(path))
        check_s, result = fastest(repeat, lambda: LinearizableChecker("kv").check(history, {}))
        ok = result["valid"] is name.endswith("-ok")
        print(f"kv {name}: {check_s:.3f} s checking, {check_s + parse_s:.3f} s with parsing, "
              f"{result['configurations']} configurations, verdict {result['valid']}"
              f"{'' if ok else ' WRONG'}")
        if name == "c50-ok":
            c50_ok = check_s
    return c50_ok


def bench_big(n_ops: int, repeat: int) -> float:
    started = time.perf_counter()
    history = register_history(n_ops, concurrency=10, keys=10, seed=1, timeout_rate=0.01)
    print(f"generated {n_ops} ops ({len(history)} events) in {time.perf_counter() - started:.2f} s")
    best = 0.0
    for processes, label in ((None, "worker processes as they pay"), (1, "one process")):
        checker = LinearizableChecker("cas-register", initial=0, independent=True,
                                      fail_cas="observed", processes=processes)
        seconds, result = fastest(repeat, lambda: checker.check(history, {}))
        print(f"{n_ops}-op cas-register, 10 keys, {label}: {seconds:.2f} s, verdict {result['valid']}, "
              f"{result['ops_checked']} ops searched, {result['configurations']} configurations")
        if processes is None:
            best = seconds
    return best


def ratio(value: float, target: float) -> str:
    return f"{value / target:.2f} of target"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement, fastest kept")
    parser.add_argument("--ops", type=int, default=100_000, help="ops in the generated history")
    args = parser.parse_args()
    if not os.path.isdir(CORPUS):
        print(f"conformance corpus not found at {CORPUS}", file=sys.stderr)
        return 2
    total, total_parse, worst, worst_name = bench_etcd(args.repeat)
    c50_ok = bench_kv(args.repeat)
    big = bench_big(args.ops, max(1, args.repeat - 1))
    print()
    print(f"ratios: etcd total {ratio(total, ETCD_TOTAL_TARGET_S)} "
          f"(with parsing {ratio(total_parse, ETCD_TOTAL_TARGET_S)}), etcd worst file "
          f"{ratio(worst, ETCD_WORST_TARGET_S)}, c50-ok {ratio(c50_ok, C50_OK_TARGET_S)}, "
          f"{args.ops}-op history {ratio(big, BIG_TARGET_S)}")
    print(f"etcd logs total: {total:.3f} s (target {ETCD_TOTAL_TARGET_S} s)")
    print(f"etcd logs worst file: {worst:.3f} s (target {ETCD_WORST_TARGET_S} s)")
    print(f"kv c50-ok: {c50_ok:.3f} s (target {C50_OK_TARGET_S} s)")
    print(f"{args.ops}-op cas-register history: {big:.2f} s (target {BIG_TARGET_S} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
