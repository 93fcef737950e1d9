"""Benchmark: what tectonic's etcd client costs over a bare HTTP loop, on a 5-node etcd.

  .venv/bin/python bench/etcd.py [--duration 10]

One 5-node etcd cluster on loopback (Debian's etcd-server, deployed by the etcd target), one
register workload: half linearizable reads, half writes, over 1,000 keys. Two clients run it
with 1 and with 10 threads, each thread on its own member starting at a follower:

- tectonic's EtcdClient (targets/etcd/client.py): op dicts in, completions out, errors
  classified, values encoded and decoded, deadlines on every request;
- a raw loop: the same requests to the same endpoints on one kept-alive connection, answers
  read and not parsed (bench/load.py).

Halves run A B B A so both see the same background load. Prints ops/s and p50/p99 latency
per client and phase, and the headline: tectonic's client within 20% of the raw loop.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from load import (etcd_cluster, raw_etcd_register_ops, register_ops, run_phase,  # noqa: E402
                  summarize)  # bench/load.py

NODES = 5
KEYS = 1000
CLIENT_COUNTS = (1, 10)
TARGET_RATIO = 0.8  # tectonic's client at least 80% of the raw loop's ops/s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per client and phase")
    args = parser.parse_args()
    half = args.duration / 2
    workdir = tempfile.mkdtemp(prefix="bench-etcd-")
    ours, raw = {}, {}
    try:
        with etcd_cluster(workdir, 61, NODES) as cluster:
            for clients in CLIENT_COUNTS:
                a1 = run_phase(register_ops(*cluster, writes=0.5, keys=KEYS), clients, half)
                b1 = run_phase(raw_etcd_register_ops(*cluster, writes=0.5, keys=KEYS), clients, half)
                b2 = run_phase(raw_etcd_register_ops(*cluster, writes=0.5, keys=KEYS), clients, half)
                a2 = run_phase(register_ops(*cluster, writes=0.5, keys=KEYS), clients, half)
                ours[clients], raw[clients] = summarize(a1, a2), summarize(b1, b2)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"{'client':10} {'threads':>7} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, results in (("tectonic", ours), ("raw loop", raw)):
        for clients, r in results.items():
            print(f"{name:10} {clients:7d} {r['ops']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} "
                  f"{r['errors']:7d}")
    for clients in CLIENT_COUNTS:
        mine, bare = ours[clients]["ops"], raw[clients]["ops"]
        ratio = mine / bare if bare else float("inf")
        print(f"etcd-client-register-{clients}-client{'s' if clients > 1 else ''}: {mine:.0f} ops/s "
              f"(target >= {TARGET_RATIO * bare:.0f}, {TARGET_RATIO:.0%} of the raw loop's "
              f"{bare:.0f}; ratio {ratio:.2f})")


if __name__ == "__main__":
    main()
