"""Benchmark: what the userspace delayer injects and what it costs (local backend, root).

  .venv/bin/python bench/faults.py [--pings 200] [--duration 8]

1. Accuracy: for each asked (mean, jitter), UDP round trips n1 -> n2 with n1's link to n2
   delayed (one way) minus the undelayed round trip's median: the added delay's p50 and
   p99, beside what was asked (uniform jitter: p50 should be the mean, p99 near mean +
   0.98 jitter).
2. The delayer's packet rate: a flood of UDP datagrams n1 -> n2 echoed back, with a zero
   delay through the delayer against the same flood without it (packets/s both ways).
3. What a delayed link costs the register workload: raftkv (5 nodes in namespaces), closed-
   loop linearizable writes through the leader, 10 clients, without delay and with the
   leader's links delayed by 5 and 20 ms (ops/s, p50/p99 latency, ratio to undelayed).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness.control.clean import clean  # noqa: E402
from harness.control.local import LocalCluster  # noqa: E402
from load import register_ops, run_phase, summarize  # noqa: E402  (bench/load.py)
from nemesis import make_nemesis  # noqa: E402
from nemesis.probe import heard  # noqa: E402

PORT = 7411
ASKED = ((0.005, 0.0), (0.02, 0.005), (0.05, 0.01), (0.1, 0.02))

FLOOD = r"""
import socket, sys, time
address, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.settimeout(1.0)
start = time.monotonic()
got = 0
window = 64  # datagrams in flight: enough to keep the path busy, few enough not to drop
sent = 0
while sent < min(window, count):
    s.sendto(b"x" * 64, (address, port)); sent += 1
while got < count:
    try:
        s.recv(128)
    except socket.timeout:
        break
    got += 1
    if sent < count:
        s.sendto(b"x" * 64, (address, port)); sent += 1
print(got / (time.monotonic() - start))
"""


def quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def pings(src, dst, count: int) -> list[float]:
    out = src.remote.exec([sys.executable, "-m", "nemesis.probe", "rtt", dst.address, str(PORT),
                           str(count)], timeout=600).stdout
    return [t for t in json.loads(out)["rtt"] if t is not None]


def flood(src, dst, count: int) -> float:
    return float(src.remote.exec([sys.executable, "-c", FLOOD, dst.address, str(PORT),
                                  str(count)], timeout=600).stdout)


def delay(local, links: dict, mean: float, jitter: float):
    nem = make_nemesis(["delay"], local.nodes, None, random.Random(1),
                       {"test_id": local.names.test_id})
    nem.invoke({"f": "start-delay", "value": {"links": links, "mean": mean, "jitter": jitter}})
    return nem


def probe_cluster(workdir: str):
    local = LocalCluster(f"bfault-{secrets.token_hex(3)}", 2, workdir)
    local.create()
    for node in local.nodes:
        node.remote.spawn([sys.executable, "-m", "nemesis.probe", "serve", node.address, str(PORT)],
                          log=os.path.join(node.dir, "probe.log"),
                          pidfile=os.path.join(node.dir, "probe.pid"))
    deadline = time.monotonic() + 10
    for node in local.nodes:
        while True:
            try:
                heard(node.address, PORT)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
    return local


def accuracy_and_rate(workdir: str, count: int) -> None:
    local = probe_cluster(workdir)
    try:
        n1, n2 = local.nodes
        base = statistics.median(pings(n1, n2, count))
        print(f"undelayed round trip n1 -> n2: p50 {base * 1000:.3f} ms")
        print(f"{'asked mean':>11} {'jitter':>7} {'added p50':>10} {'p99':>8} {'p50 error':>10}")
        for mean, jitter in ASKED:
            nem = delay(local, {"n1": ["n2"]}, mean, jitter)
            added = [t - base for t in pings(n1, n2, count)]
            nem.teardown()
            p50, p99 = quantile(added, 0.5), quantile(added, 0.99)
            print(f"{mean * 1000:9.1f}ms {jitter * 1000:5.1f}ms {p50 * 1000:8.2f}ms "
                  f"{p99 * 1000:6.2f}ms {(p50 - mean) * 1000:+8.2f}ms")
        plain = [flood(n1, n2, 20000) for _ in range(3)]
        nem = make_nemesis(["delay"], local.nodes, None, random.Random(1),
                           {"test_id": local.names.test_id})
        # Both directions through a delayer, with zero delay: the delayer's own cost.
        nem.invoke({"f": "start-delay", "value": {"links": {"n1": ["n2"], "n2": ["n1"]},
                                                  "mean": 0.0, "jitter": 0.0}})
        queued = [flood(n1, n2, 20000) for _ in range(3)]
        nem.teardown()
        print(f"echo flood n1 <-> n2 (median of 3): {statistics.median(plain):,.0f} round trips/s "
              f"direct, {statistics.median(queued):,.0f}/s through a delayer each way "
              f"({statistics.median(queued) / statistics.median(plain):.2f}x)")
    finally:
        local.destroy()
        clean(local.names.test_id)


def register_cost(workdir: str, duration: float) -> None:
    from targets.raftkv import RaftKVTarget
    local = LocalCluster(f"bfaultr-{secrets.token_hex(3)}", 5, workdir, RaftKVTarget.needs)
    try:
        nodes = local.create()
        target = RaftKVTarget({"bugs": []}, nodes)
        for node in nodes:
            target.setup(node)
        target.wait_healthy(nodes, 30)
        leader = target.leader(nodes)
        first = nodes.index(leader)
        others = [n.name for n in nodes if n is not leader]
        results = {}
        for ms in (0, 5, 20):
            nem = delay(local, {leader.name: others}, ms / 1000, 0.0) if ms else None
            results[ms] = summarize(run_phase(register_ops(target, nodes, first, writes=1.0),
                                              10, duration))
            if nem is not None:
                nem.teardown()
        print("raftkv register writes, 10 clients through the leader, leader's links delayed:")
        for ms, r in results.items():
            print(f"  {ms:3d} ms: {r['ops']:7.1f} ops/s  p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms"
                  f"  ({r['ops'] / results[0]['ops']:.2f}x undelayed)")
        for node in nodes:
            target.teardown(node)
    finally:
        local.destroy()
        clean(local.names.test_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pings", type=int, default=200)
    parser.add_argument("--duration", type=float, default=8.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/faults.py needs root (namespaces, iptables)")
    with tempfile.TemporaryDirectory() as workdir:
        accuracy_and_rate(workdir, args.pings)
        register_cost(workdir, args.duration)


if __name__ == "__main__":
    main()
