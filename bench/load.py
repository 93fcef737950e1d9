"""What the load benchmarks share: closed-loop client phases and their summary, register
clients (through a target's own client, or a raw HTTP loop against etcd: one keep-alive
connection, answers not parsed), and a 5-node etcd on loopback deployed by the etcd target.

Imported by the scripts beside it (`python bench/x.py` puts bench/ on sys.path).
"""
from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import random
import statistics
import threading
import time

from harness.protocols import HostRemote, Node
from targets.etcd import EtcdTarget
from targets.etcd.client import encode_value, register_key


def run_phase(make_op, clients: int, duration: float) -> dict:
    """make_op(i) -> a callable doing one op (True on success) for client i."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start_at = time.monotonic() + 0.2
    stop_at = start_at + duration

    def worker(i):
        op = make_op(i)
        while time.monotonic() < start_at:
            time.sleep(0.005)
        lat = latencies[i]
        while True:
            t0 = time.monotonic()
            if t0 >= stop_at:
                break
            if op():
                lat.append(time.monotonic() - t0)
            else:
                errors[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"latencies": [x for lat in latencies for x in lat], "errors": sum(errors),
            "duration": duration}


def summarize(*runs: dict) -> dict:
    """ops/s, p50 and p99 (ms) over one or more runs of the same phase."""
    lat = sorted(x for run in runs for x in run["latencies"])
    errors = sum(run["errors"] for run in runs)
    if not lat:
        return {"ops": 0.0, "p50": float("nan"), "p99": float("nan"), "errors": errors}
    return {"ops": len(lat) / sum(run["duration"] for run in runs),
            "p50": statistics.median(lat) * 1000,
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
            "errors": errors}


def register_ops(target, nodes: list, first: int, writes: float, keys: int = 1000):
    """make_op(i) for run_phase: client i, on nodes[(first + i) % len(nodes)], runs register
    ops through the target's own client over `keys` keys; `writes` is their share (0 to 1)."""
    def make_op(i):
        node = nodes[(first + i) % len(nodes)]
        client = target.client(node)
        client.open(node)
        rng, counter = random.Random(i), [0]

        def op():
            key = rng.randrange(keys)
            if writes >= 1 or (writes > 0 and rng.random() < writes):
                counter[0] += 1
                done = client.invoke({"f": "write", "value": [key, counter[0]]}, 5.0)
            else:
                done = client.invoke({"f": "read", "value": [key, None]}, 5.0)
            return done["type"] == "ok"
        return op
    return make_op


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class RawHTTP:
    """POST a JSON body on one kept-alive connection; True when the answer is 200."""

    def __init__(self, host: str, port: int):
        self.conn = http.client.HTTPConnection(host, port, timeout=5.0)

    def post(self, path: str, body: dict) -> bool:
        try:
            self.conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            resp.read()
            return resp.status == 200
        except (OSError, http.client.HTTPException):
            self.conn.close()
            return False


def raw_etcd_register_ops(target, nodes: list, first: int, writes: float, keys: int = 1000):
    """register_ops' raw twin for etcd: the same requests the etcd client sends (puts and
    linearizable ranges on its keys and values), on a RawHTTP connection per client."""
    def make_op(i):
        node = nodes[(first + i) % len(nodes)]
        http = RawHTTP(node.address, target.client_port)
        rng, counter = random.Random(i), [0]

        def op():
            key = b64(register_key(rng.randrange(keys)))
            if writes >= 1 or (writes > 0 and rng.random() < writes):
                counter[0] += 1
                return http.post("/v3/kv/put", {"key": key, "value": encode_value(counter[0])})
            return http.post("/v3/kv/range", {"key": key, "serializable": False})
        return op
    return make_op


@contextlib.contextmanager
def etcd_cluster(workdir: str, first_octet: int, members: int = 5):
    """(target, nodes, first): a healthy etcd cluster on 127.0.0.<first_octet>..., deployed
    and torn down by the etcd target; nodes[first] is a follower."""
    if not os.access("/usr/bin/etcd", os.X_OK):
        raise SystemExit("etcd not found (apt-get install -y etcd-server)")
    nodes = [Node(f"e{i + 1}", f"127.0.0.{first_octet + i}", HostRemote(),
                  os.path.join(workdir, f"etcd-e{i + 1}")) for i in range(members)]
    target = EtcdTarget({}, nodes)
    try:
        for node in nodes:
            target.setup(node)
        target.wait_healthy(nodes, 30)
        yield target, nodes, (nodes.index(target.leader(nodes)) + 1) % members
    finally:
        for node in nodes:
            target.teardown(node)
