"""Benchmark: reading a big history from its file, as `tectonic check` and `analyze` do.

    python bench/history_read.py [--ops 100000] [--runs 5]

Writes one generated cas-register history (10 keys, 10 processes, 1% timeouts) as our
history.jsonl and as Jepsen's history.edn, then times `load_history` on each, each run
in a fresh interpreter (a warm heap would make the collector's share look different),
and `iter_jsonl` (the streamed reader). Prints medians and events per second.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.history import write_edn_history, write_jsonl  # noqa: E402
from testkit.register_history import register_history  # noqa: E402

TIMED = """
import sys, time
sys.path.insert(0, {root!r})
from core.history import iter_jsonl, load_history
started = time.perf_counter()
if sys.argv[1] == "stream":
    n = sum(len(ops) for _, ops in iter_jsonl(sys.argv[2]))
else:
    n = len(load_history(sys.argv[2]))
print(n, time.perf_counter() - started)
"""


def timed(how: str, path: str, runs: int) -> tuple[int, float]:
    seconds, count = [], 0
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", TIMED.format(root=ROOT), how, path],
                             capture_output=True, text=True, check=True).stdout.split()
        count = int(out[0])
        seconds.append(float(out[1]))
    return count, statistics.median(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=100_000, help="ops in the generated history")
    parser.add_argument("--runs", type=int, default=5, help="runs per reader, median reported")
    args = parser.parse_args()
    history = register_history(args.ops, concurrency=10, keys=10, seed=1, timeout_rate=0.01)
    with tempfile.TemporaryDirectory() as tmp:
        jsonl, edn = os.path.join(tmp, "history.jsonl"), os.path.join(tmp, "history.edn")
        write_jsonl(history, jsonl)
        write_edn_history(history, edn)
        for label, how, path in (("history.jsonl, load_history", "load", jsonl),
                                 ("history.jsonl, iter_jsonl", "stream", jsonl),
                                 ("history.edn, load_history", "load", edn)):
            count, seconds = timed(how, path, args.runs)
            print(f"{label}: {seconds:.2f} s for {count:,} events "
                  f"({count / seconds:,.0f} events/s, {os.path.getsize(path) / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
