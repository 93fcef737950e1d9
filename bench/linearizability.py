"""Benchmark: the linearizability checker on the conformance corpus and a big history.

  .venv/bin/python bench/linearizability.py [--repeat 3] [--ops 100000] [--porcupine BIN]
      [--porcupine-timeout 30] [--only etcd,kv,shapes,failing,big]

Measures, each file checked --repeat times, the median run reported (the machine is
shared):
- the 102 etcd logs of Porcupine's test data (cas-register, nil = absent, failed CAS =
  observed): total and worst file, parse excluded and included;
- Porcupine's kv files (c01 / c10 / c50, -ok and -bad), c50-ok especially;
- two generated, seeded shapes where search is hardest, 10 histories each, against
  Porcupine's times on the same histories: measured side by side in the same run with
  --porcupine BIN (the driver of bench/porcupine/, run --repeat times on each history,
  its medians), else those recorded in bench/porcupine_times.json:
  "multi" (3-8 keys, 20-40 processes, 100-200 ops per process, 10-20% timeouts),
  "single" (one key, 10-30 processes, 20-40 ops per process, 15% timeouts) and "easy"
  (5-50 keys, 5-20 processes, 5,000-20,000 ops, 0-3% timeouts: a nearly linear search,
  where the time goes into reading the history, Porcupine's strength); it prints
  for each history the CPU and wall times of both and the ratio of CPU times (the
  steadier figure on a shared machine; Porcupine's counts all its goroutines, ours our
  worker processes), then the worst CPU ratio, the totals over the histories both decided
  and the worst wall-time ratio;
- with --porcupine only: 10 seeded histories that are not linearizable (3-16 keys, 5-20
  processes, 2,000-10,000 ops, 0-5% timeouts, 0.5-2% stale reads planted), each checked
  twice against the like-for-like Porcupine call: finding and explaining every failing
  key (our default) against its CheckEventsVerbose, and stopping at the first failing
  key (failures="first") against its CheckEventsTimeout, which stops there too; the
  worst wall and CPU ratios of each pairing;
- a generated history of --ops cas-register ops on 10 keys at concurrency 10, with
  timeouts (info ops), checked with independent keys (worker processes when they pay),
  and in one process for comparison.
Only decided runs count as results: an undecided one (ours: a verdict other than True on
these linearizable-by-construction histories; Porcupine's: "unknown" at its timeout) is
reported as undecided, with why, never as a time.
Targets are Porcupine's (Go) times on this kind of machine, see the corpus README. Prints
the figures, the ratio of each to its target, then one headline line per target.

  .venv/bin/python bench/linearizability.py --record-porcupine BIN

re-records Porcupine's times with the driver of bench/porcupine/ (see its README).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from checkers.linearizable import LinearizableChecker  # noqa: E402
from core.history import load_history  # noqa: E402
from testkit.register_history import register_history  # noqa: E402

CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "conformance", "porcupine")
ETCD_TOTAL_TARGET_S = 1.2
ETCD_WORST_TARGET_S = 0.5
C50_OK_TARGET_S = 0.7
BIG_TARGET_S = 10.0
PORCUPINE_TIMES = os.path.join(ROOT, "bench", "porcupine_times.json")
PORCUPINE_TIMEOUT_S = 30
SHAPE_SEEDS = range(1, 11)
SHAPES = ("multi", "single", "easy")


def measured(repeat: int, fn):
    """(median wall seconds of `repeat` runs, the last run's value)."""
    wall, _, value = measured_cpu(repeat, fn)
    return wall, value


def measured_cpu(repeat: int, fn, stop=None):
    """(wall seconds, CPU seconds of this process and its children, the last value), each
    the median of `repeat` runs (on a shared machine CPU time is the steadier figure).
    `stop(value)` true: no more runs (an undecided one is not repeated)."""
    walls, cpus = [], []
    value = None
    for _ in range(max(1, repeat)):
        cpu0 = _cpu()
        started = time.perf_counter()
        value = fn()
        walls.append(time.perf_counter() - started)
        cpus.append(_cpu() - cpu0)
        if stop is not None and stop(value):
            break
    return statistics.median(walls), statistics.median(cpus), value


def _cpu() -> float:
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


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
        parse_s, history = measured(repeat, lambda: load_history(path))
        check_s, result = measured(repeat, lambda: checker.check(history, {}))
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
        parse_s, history = measured(repeat, lambda: load_history(path))
        check_s, result = measured(repeat, lambda: LinearizableChecker("kv").check(history, {}))
        ok = result["valid"] is name.endswith("-ok")
        print(f"kv {name}: {check_s:.3f} s checking, {check_s + parse_s:.3f} s with parsing, "
              f"{result['configurations']} configurations, verdict {result['valid']}"
              f"{'' if ok else ' WRONG'}")
        if name == "c50-ok":
            c50_ok = check_s
    return c50_ok


def bench_big(n_ops: int, repeat: int) -> float | None:
    started = time.perf_counter()
    history = register_history(n_ops, concurrency=10, keys=10, seed=1, timeout_rate=0.01)
    print(f"generated {n_ops} ops ({len(history)} events) in {time.perf_counter() - started:.2f} s")
    best = None
    for processes, label in ((None, "worker processes as they pay"), (1, "one process")):
        checker = LinearizableChecker("cas-register", initial=0, independent=True,
                                      fail_cas="observed", processes=processes)
        seconds, cpu, result = measured_cpu(repeat, lambda: checker.check(history, {}),
                                            stop=lambda r: r["valid"] is not True)
        if result["valid"] is not True:   # linearizable by construction
            print(f"{n_ops}-op cas-register, 10 keys, {label}: UNDECIDED ({result['valid']}): "
                  f"{result['unknown_reasons']}")
            continue
        print(f"{n_ops}-op cas-register, 10 keys, {label}: {seconds:.2f} s wall, {cpu:.2f} s CPU, "
              f"{result['ops_checked']} ops searched, {result['configurations']} configurations")
        if processes is None:
            best = seconds
    return best


def shape(name: str, seed: int) -> dict:
    """register_history's arguments for history `seed` of a shape (see the docstring)."""
    rng = random.Random(seed)
    if name == "multi":
        keys, concurrency, per_process = rng.randint(3, 8), rng.randint(20, 40), rng.randint(100, 200)
        timeout_rate = rng.uniform(0.10, 0.20)
    elif name == "easy":
        keys, concurrency = rng.randint(5, 50), rng.randint(5, 20)
        per_process = rng.randint(5000, 20000) // concurrency
        timeout_rate = rng.uniform(0.0, 0.03)
    else:
        keys, concurrency, per_process = 1, rng.randint(10, 30), rng.randint(20, 40)
        timeout_rate = 0.15
    return dict(n_ops=concurrency * per_process, concurrency=concurrency, keys=keys,
                seed=seed, timeout_rate=timeout_rate)


def shape_histories():
    """(name, register_history arguments, history) of every generated shape history."""
    for name in SHAPES:
        for seed in SHAPE_SEEDS:
            args = shape(name, seed)
            yield f"{name}-{seed}", args, register_history(**args)


def shape_checker(failures: str = "all") -> LinearizableChecker:
    return LinearizableChecker("cas-register", initial=0, independent=True, fail_cas="observed",
                               failures=failures)


def write_jsonl(path: str, history: list[dict]) -> None:
    with open(path, "w") as f:
        f.writelines(json.dumps(op) + "\n" for op in history)


def run_porcupine(binary: str, path: str, repeat: int, timeout: float, verbose: bool = False) -> dict:
    """The driver's answer on one history file: result, medians and fastest of its runs
    (verbose: CheckEventsVerbose, every partition checked and its linearization info)."""
    try:
        out = subprocess.run([binary, "-timeout", f"{timeout}s", "-repeat", str(max(1, repeat)),
                              *(["-verbose"] if verbose else []), path],
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout)
    except (OSError, subprocess.CalledProcessError, ValueError) as e:
        raise SystemExit(f"porcupine driver {binary} failed on {path}: {e}") from None


def bench_shapes(repeat: int, porcupine: str | None = None,
                 porcupine_timeout: float = PORCUPINE_TIMEOUT_S) -> tuple:
    """Each shape history against Porcupine's CPU time (and wall time), measured side by
    side when `porcupine` (the driver) is given, else as recorded: (worst CPU ratio, its
    history, our CPU total, Porcupine's, over the histories both decided, worst wall-time
    ratio, its history)."""
    recorded = {}
    if porcupine is None and os.path.exists(PORCUPINE_TIMES):
        with open(PORCUPINE_TIMES) as f:
            recorded = json.load(f)["histories"]
    where = "measured side by side" if porcupine else "recorded in bench/porcupine_times.json"
    print(f"shape histories: medians of {repeat} runs; Porcupine {where}")
    worst, worst_name, ours_total, theirs_total = None, "", 0.0, 0.0
    worst_wall, worst_wall_name = None, ""
    undecided_ours, undecided_theirs = [], []
    checker = shape_checker()
    with tempfile.TemporaryDirectory() as folder:
        for name, args, history in shape_histories():
            seconds, cpu, result = measured_cpu(repeat, lambda: checker.check(history, {}),
                                                stop=lambda r: r["valid"] is not True)
            line = (f"{name} ({args['keys']} keys, {args['concurrency']} processes, {args['n_ops']} ops, "
                    f"{args['timeout_rate']:.0%} timeouts): ")
            if porcupine:
                path = os.path.join(folder, name + ".jsonl")
                write_jsonl(path, history)
                theirs = run_porcupine(porcupine, path, repeat, porcupine_timeout)
                os.remove(path)
            else:
                theirs = recorded.get(name)
            if result["valid"] is not True:   # generated linearizable: anything else is wrong
                line += (f"ours UNDECIDED ({result['valid']}: "
                         f"{'; '.join(sorted(set(result['unknown_reasons'].values()))) or 'invalid'})")
                undecided_ours.append(name)
            else:
                line += f"ours {cpu:.4f} s CPU ({seconds:.4f} s wall), {result['configurations']} configurations"
            if theirs is None:
                print(line + "; no Porcupine time recorded")
                continue
            if theirs["result"] != "ok":
                print(line + f"; Porcupine UNDECIDED ({theirs['result']} at its "
                             f"{porcupine_timeout if porcupine else PORCUPINE_TIMEOUT_S:g} s timeout)")
                undecided_theirs.append(name)
                continue
            line += f"; Porcupine {theirs['cpu_seconds']:.4f} s CPU ({theirs['seconds']:.4f} s wall)"
            if result["valid"] is not True:
                print(line)
                continue
            r, r_wall = cpu / theirs["cpu_seconds"], seconds / theirs["seconds"]
            print(line + f"; ratio {r:.2f} CPU, {r_wall:.2f} wall", flush=True)
            if worst_wall is None or r_wall > worst_wall:
                worst_wall, worst_wall_name = r_wall, name
            ours_total += cpu
            theirs_total += theirs["cpu_seconds"]
            if worst is None or r > worst:
                worst, worst_name = r, name
    print(f"shape histories undecided: ours {len(undecided_ours)} {undecided_ours}, "
          f"Porcupine's {len(undecided_theirs)} {undecided_theirs}")
    return worst, worst_name, ours_total, theirs_total, worst_wall, worst_wall_name


def failing_shape(seed: int) -> dict:
    """register_history's arguments for failing history `seed` (see bench_failing)."""
    rng = random.Random(1000 + seed)
    keys, concurrency = rng.randint(3, 16), rng.randint(5, 20)
    return dict(n_ops=rng.randint(2000, 10000), concurrency=concurrency, keys=keys, seed=seed,
                timeout_rate=rng.uniform(0.0, 0.05), stale_reads=rng.uniform(0.005, 0.02))


def bench_failing(repeat: int, porcupine: str, porcupine_timeout: float) -> dict:
    """Histories that are not linearizable (stale reads planted), each checked two ways
    against the like-for-like Porcupine call, side by side: ours finding and explaining
    every failing key (the default) against CheckEventsVerbose (every partition checked,
    with its linearization info), and ours stopping at the first failing key
    (failures="first") against CheckEventsTimeout (it stops at the first illegal
    partition). Histories either side leaves undecided, or finds linearizable, count for
    no ratio. Returns, per pairing, (worst wall ratio, its history, worst CPU ratio, its
    history, our wall total, theirs)."""
    print(f"failing histories: medians of {repeat} runs; Porcupine measured side by side")
    pairings = {"all": (shape_checker(), True), "first": (shape_checker("first"), False)}
    worst: dict[str, list] = {mode: [None, "", None, "", 0.0, 0.0] for mode in pairings}
    with tempfile.TemporaryDirectory() as folder:
        for seed in SHAPE_SEEDS:
            args = failing_shape(seed)
            history = register_history(**args)
            name = f"failing-{seed}"
            path = os.path.join(folder, name + ".jsonl")
            write_jsonl(path, history)
            head = (f"{name} ({args['keys']} keys, {args['concurrency']} processes, {args['n_ops']} ops, "
                    f"{args['timeout_rate']:.0%} timeouts, {args['stale_reads']:.1%} stale reads)")
            for mode, (checker, verbose) in pairings.items():
                wall, cpu, result = measured_cpu(repeat, lambda: checker.check(history, {}))
                theirs = run_porcupine(porcupine, path, repeat, porcupine_timeout, verbose)
                line = (f"{head} {mode}: ours {result['valid']} in {wall:.4f} s wall ({cpu:.4f} s CPU), "
                        f"{len(result['failures'])} keys explained; Porcupine{' verbose' if verbose else ''} "
                        f"{theirs['result']} in {theirs['seconds']:.4f} s wall ({theirs['cpu_seconds']:.4f} s CPU)")
                if result["valid"] is not False or theirs["result"] != "illegal":
                    print(line + "; no ratio (not both found it illegal)")
                    continue
                r_wall, r_cpu = wall / theirs["seconds"], cpu / theirs["cpu_seconds"]
                capped = theirs["seconds"] >= porcupine_timeout
                # at its timeout Porcupine still says illegal (a partition was), but its
                # time is the timeout's: the ratio is a bound, and the totals leave it out
                print(line + f"; ratio {r_wall:.2f} wall, {r_cpu:.2f} CPU"
                      + (" (Porcupine at its timeout, its info unfinished)" if capped else ""), flush=True)
                w = worst[mode]
                if w[0] is None or r_wall > w[0]:
                    w[0], w[1] = r_wall, name
                if w[2] is None or r_cpu > w[2]:
                    w[2], w[3] = r_cpu, name
                if not capped:
                    w[4] += wall
                    w[5] += theirs["seconds"]
            os.remove(path)
    return worst


def record_porcupine(binary: str, repeat: int = 3, timeout: float = PORCUPINE_TIMEOUT_S) -> None:
    """Run Porcupine (the driver of bench/porcupine/) on every shape history and write
    the times (medians of `repeat` runs) to PORCUPINE_TIMES."""
    times = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, _, history in shape_histories():
            path = os.path.join(folder, name + ".jsonl")
            write_jsonl(path, history)
            answer = run_porcupine(binary, path, repeat, timeout)
            times[name] = {"seconds": round(answer["seconds"], 4),
                           "cpu_seconds": round(answer["cpu_seconds"], 4), "result": answer["result"]}
            print(name, times[name], flush=True)
    go = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    with open(PORCUPINE_TIMES, "w") as f:
        json.dump({"recorded_with": f"bench/porcupine driver, {go}, timeout {timeout:g} s, "
                                    f"median of {repeat} runs, on {os.cpu_count()} cores",
                   "histories": times}, f, indent=1)
        f.write("\n")


def ratio(value: float, target: float) -> str:
    return f"{value / target:.2f} of target"


SECTIONS = ("etcd", "kv", "shapes", "failing", "big")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement, median reported")
    parser.add_argument("--ops", type=int, default=100_000, help="ops in the generated history")
    parser.add_argument("--porcupine", metavar="BIN",
                        help="run Porcupine's driver (bench/porcupine/) side by side on the shape histories")
    parser.add_argument("--porcupine-timeout", type=float, default=PORCUPINE_TIMEOUT_S, metavar="S",
                        help="Porcupine gives up (undecided) after this many seconds")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run, of {', '.join(SECTIONS)}")
    parser.add_argument("--record-porcupine", metavar="BIN",
                        help="record Porcupine's times on the shape histories with this driver")
    args = parser.parse_args()
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    if not only or only - set(SECTIONS):
        print(f"--only takes sections of {', '.join(SECTIONS)}, got {args.only!r}", file=sys.stderr)
        return 254
    if args.repeat < 1 or args.ops < 1 or args.porcupine_timeout <= 0:
        print("--repeat, --ops and --porcupine-timeout must be positive", file=sys.stderr)
        return 254
    for binary in (args.porcupine, args.record_porcupine):
        if binary and not os.access(binary, os.X_OK):
            print(f"porcupine driver not found or not executable: {binary} "
                  f"(build it with bench/porcupine/build.sh)", file=sys.stderr)
            return 254
    if args.record_porcupine:
        record_porcupine(args.record_porcupine, args.repeat, args.porcupine_timeout)
        return 0
    if only & {"etcd", "kv"} and not os.path.isdir(CORPUS):
        print(f"conformance corpus not found at {CORPUS}", file=sys.stderr)
        return 254
    headlines = []
    ratios = []
    if "etcd" in only:
        total, total_parse, worst, worst_name = bench_etcd(args.repeat)
        ratios += [f"etcd total {ratio(total, ETCD_TOTAL_TARGET_S)} "
                   f"(with parsing {ratio(total_parse, ETCD_TOTAL_TARGET_S)})",
                   f"etcd worst file {ratio(worst, ETCD_WORST_TARGET_S)}"]
        headlines += [f"etcd logs total: {total:.3f} s (target {ETCD_TOTAL_TARGET_S} s)",
                      f"etcd logs worst file: {worst:.3f} s (target {ETCD_WORST_TARGET_S} s)"]
    if "kv" in only:
        c50_ok = bench_kv(args.repeat)
        ratios.append(f"c50-ok {ratio(c50_ok, C50_OK_TARGET_S)}")
        headlines.append(f"kv c50-ok: {c50_ok:.3f} s (target {C50_OK_TARGET_S} s)")
    if "shapes" in only:
        shapes_worst, shapes_worst_name, ours, theirs, worst_wall, worst_wall_name = bench_shapes(
            args.repeat, args.porcupine, args.porcupine_timeout)
        if shapes_worst is None:
            headlines.append("shape histories vs Porcupine: no history that both decided")
        else:
            headlines.append(f"shape histories vs Porcupine: worst CPU-time ratio {shapes_worst:.2f} "
                             f"({shapes_worst_name}); totals {ours:.3f} s vs Porcupine {theirs:.3f} s CPU "
                             f"({ours / theirs:.2f}) over the histories both decided; worst wall-time "
                             f"ratio {worst_wall:.2f} ({worst_wall_name})")
    if "failing" in only and not args.porcupine:
        print("failing histories: skipped (they are measured only side by side: give --porcupine BIN)")
    elif "failing" in only:
        for mode, (w_wall, n_wall, w_cpu, n_cpu, ours, theirs) in bench_failing(
                args.repeat, args.porcupine, args.porcupine_timeout).items():
            peer = "Porcupine verbose" if mode == "all" else "Porcupine"
            if w_wall is None:
                headlines.append(f"failing histories, {mode} failures vs {peer}: none both found illegal")
                continue
            headlines.append(f"failing histories, {mode} failures vs {peer}: worst wall-time ratio "
                             f"{w_wall:.2f} ({n_wall}), worst CPU-time ratio {w_cpu:.2f} ({n_cpu}); "
                             f"wall totals {ours:.3f} s vs {theirs:.3f} s where Porcupine finished "
                             f"within its timeout")
    if "big" in only:
        big = bench_big(args.ops, args.repeat)
        big_text = "undecided" if big is None else f"{big:.2f} s"
        ratios.append(f"{args.ops}-op history {'undecided' if big is None else ratio(big, BIG_TARGET_S)}")
        headlines.append(f"{args.ops}-op cas-register history: {big_text} (target {BIG_TARGET_S} s)")
    print()
    if ratios:
        print("ratios: " + ", ".join(ratios))
    for line in headlines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
