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

# Per 100,000 ops (200,000 events): reading should not be what `tectonic check` waits on
# (its check of this history takes about 0.1 s). Before the readers were made fast (at
# 7e1b0f3): jsonl 1.77 s, jsonl-streamed 0.60 s, edn 12.38 s.
JSONL_TARGET_S = 1.0
EDN_TARGET_S = 5.0

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
        figures = []
        for name, how, path, target in (("jsonl", "load", jsonl, JSONL_TARGET_S),
                                        ("jsonl-streamed", "stream", jsonl, JSONL_TARGET_S),
                                        ("edn", "load", edn, EDN_TARGET_S)):
            count, seconds = timed(how, path, args.runs)
            print(f"{name}: {count:,} events, {os.path.getsize(path) / 1e6:.0f} MB, "
                  f"{count / seconds:,.0f} events/s")
            target *= args.ops / 100_000
            figures.append(f"read-{args.ops:,}-op-{name}: {seconds:.2f} s (target {target:.2f} s)")
    print("\n".join(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
