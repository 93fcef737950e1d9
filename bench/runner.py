"""How many ops per second the runner records with a no-op client.

The interpreter, the worker threads and the history writer are the whole cost here: this
is the ceiling tectonic puts on any target. Target: 20,000 ops/s (about what Jepsen's
generator sustains).

    .venv/bin/python bench/runner.py [--seconds 10]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness import generator as gen  # noqa: E402
from core.history import HistoryWriter, read_jsonl  # noqa: E402
from harness.protocols import Node, NoopClient, NoopNemesis  # noqa: E402
from harness.runner import Runner  # noqa: E402

TARGET = 20_000


class NoopTarget:
    name = "noop"

    def client(self, node):
        return NoopClient()


def measure(concurrency: int, seconds: float) -> float:
    with tempfile.TemporaryDirectory() as d:
        w = HistoryWriter(os.path.join(d, "history.jsonl"), autoflush=False)
        nodes = [Node(f"n{i}", "127.0.0.1", None, d) for i in range(1, 6)]
        g = gen.clients(gen.time_limit(seconds, gen.repeat({"f": "write", "value": [1, 2]})))
        t0 = time.monotonic()
        Runner(generator=g, target=NoopTarget(), nemesis=NoopNemesis(), nodes=nodes, history=w,
               concurrency=concurrency).run()
        elapsed = time.monotonic() - t0
        w.close()
        completed = sum(1 for op in read_jsonl(w.path) if op["type"] != "invoke")
        return completed / elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    results = {}
    for c in (10, 100):
        rates = [measure(c, args.seconds) for _ in range(args.repeat)]
        results[c] = statistics.median(rates)
        print(f"concurrency {c:>3}: {results[c]:,.0f} ops/s recorded (median of {len(rates)})")
    for c, r in results.items():
        print(f"runner-noop-c{c}: {r:.0f} ops/s (target {TARGET})")


if __name__ == "__main__":
    main()
