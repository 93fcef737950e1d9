"""Benchmark: raftkv against etcd, both 5 nodes on loopback, same workload, same run.

  .venv/bin/python bench/raftkv.py [--duration 10] [--skip-etcd]

Four phases per system: linearizable writes and linearizable reads, with 1 and with 10
clients, each for --duration seconds, run in halves A B B A so both systems see the same
background load. Clients are spread over the nodes starting at a follower (followers
forward to the leader, as a Jepsen test's clients would see), so the single client takes
the same path, through a follower, in both systems. Prints ops/s and p50/p99 latency per
phase, the raftkv/etcd ratio, and one headline line per phase. etcd is Debian's etcd-server
(/usr/bin/etcd, v3 API through its JSON gateway).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness.protocols import HostRemote, Node  # noqa: E402
from load import (etcd_cluster, raw_etcd_register_ops, register_ops, run_phase,  # noqa: E402
                  summarize)  # bench/load.py
from targets.raftkv import RaftKVTarget  # noqa: E402

NODES = 5
KEYS = 1000
PHASES = (("writes", 1), ("writes", 10), ("reads", 1), ("reads", 10))


# ---- raftkv ------------------------------------------------------------------------------

@contextlib.contextmanager
def raftkv_cluster(workdir: str):
    """Yields ops(kind) -> make_op for a running 5-node raftkv cluster."""
    nodes = [Node(f"n{i + 1}", f"127.0.0.{41 + i}", HostRemote(),
                  os.path.join(workdir, f"raftkv-n{i + 1}"),
                  pythonpath=RaftKVTarget.needs.local_pythonpath()) for i in range(NODES)]
    target = RaftKVTarget({"target_opts": {"port": 7600}}, nodes)
    try:
        for node in nodes:
            target.setup(node)
        target.wait_healthy(nodes, 20)
        first = nodes.index(target.leader(nodes)) + 1

        def ops(kind):
            return register_ops(target, nodes, first, writes=1.0 if kind == "writes" else 0.0,
                                keys=KEYS)
        yield ops
    finally:
        for node in nodes:
            target.teardown(node)


# ---- etcd --------------------------------------------------------------------------------

@contextlib.contextmanager
def etcd_raw_loop(workdir: str):
    """Yields ops(kind) -> make_op for a running 5-node etcd cluster, driven by the raw
    HTTP loop (etcd's best case: no client of ours in the way)."""
    with etcd_cluster(workdir, 51, NODES) as (target, nodes, first):
        def ops(kind):
            return raw_etcd_register_ops(target, nodes, first,
                                         writes=1.0 if kind == "writes" else 0.0, keys=KEYS)
        yield ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--skip-etcd", action="store_true")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bench-raftkv-")
    ours, theirs = {}, None
    half = args.duration / 2
    try:
        with contextlib.ExitStack() as stack:
            raftkv = stack.enter_context(raftkv_cluster(workdir))
            etcd = None if args.skip_etcd else stack.enter_context(etcd_raw_loop(workdir))
            theirs = None if etcd is None else {}
            for kind, clients in PHASES:
                if etcd is None:
                    ours[(kind, clients)] = summarize(run_phase(raftkv(kind), clients, args.duration))
                    continue
                # A B B A: the machine's load drifts (other work shares its 2 cores), and
                # alternating halves gives both systems the same share of it.
                a1 = run_phase(raftkv(kind), clients, half)
                b1 = run_phase(etcd(kind), clients, half)
                b2 = run_phase(etcd(kind), clients, half)
                a2 = run_phase(raftkv(kind), clients, half)
                ours[(kind, clients)] = summarize(a1, a2)
                theirs[(kind, clients)] = summarize(b1, b2)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'system':8} {'phase':18} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, res in (("raftkv", ours), ("etcd", theirs)):
        for (kind, clients), r in (res or {}).items():
            print(f"{name:8} {kind + f', {clients} client' + ('s' if clients > 1 else ''):18} "
                  f"{r['ops']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['errors']:7d}")
    for kind, clients in PHASES:
        mine = ours[(kind, clients)]["ops"]
        label = f"raftkv-{kind}-{clients}-client{'s' if clients > 1 else ''}"
        if theirs:
            etcd_ops = theirs[(kind, clients)]["ops"]
            ratio = mine / etcd_ops if etcd_ops else float("inf")
            print(f"{label}: {mine:.0f} ops/s (target >= {etcd_ops:.0f}, etcd's; ratio {ratio:.2f})")
        else:
            print(f"{label}: {mine:.0f} ops/s (target >= etcd's, not measured)")


if __name__ == "__main__":
    main()
