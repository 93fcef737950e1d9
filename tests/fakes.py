"""An in-process stand-in for a cluster and a target, for fast tests of the runner.

The "database" is a dict behind one lock, so it is trivially strictly serializable;
`hang_on` / `raise_on` make chosen functions misbehave on demand.
"""
from __future__ import annotations

import threading
import time

from harness.protocols import (HealthCheck, HostRemote, Kill, LogFiles, Node, Pause, Primary,
                               Target)


class FakeCluster:
    def __init__(self, node_count: int, work_dir: str):
        self.node_count, self.work_dir = node_count, work_dir
        self.destroyed = False

    def create(self):
        return [Node(f"n{i + 1}", "127.0.0.1", HostRemote(), self.work_dir) for i in range(self.node_count)]

    def destroy(self):
        self.destroyed = True

    def vanished(self):
        return []


class FakeTarget(Target, HealthCheck, Kill, Pause, Primary, LogFiles):
    name = "fake"

    def __init__(self, *, hang_on=(), raise_on=(), latency: float = 0.0):
        super().__init__({}, [])
        self.data: dict = {}
        self.lock = threading.Lock()
        self.hang_on, self.raise_on, self.latency = set(hang_on), set(raise_on), latency
        self.calls: list[str] = []

    def setup(self, node): self.calls.append(f"setup {node.name}")
    def start(self, node): self.calls.append(f"start {node.name}")
    def wait_healthy(self, nodes, timeout): self.calls.append("healthy")
    def kill(self, node): self.calls.append(f"kill {node.name}")
    def pause(self, node): self.calls.append(f"pause {node.name}")
    def resume(self, node): self.calls.append(f"resume {node.name}")
    def teardown(self, node): self.calls.append(f"teardown {node.name}")
    def log_files(self, node): return []
    def leader(self, nodes): return nodes[0]
    def client(self, node): return FakeClient(self)


class FakeClient:
    def __init__(self, target: FakeTarget):
        self.t = target

    def open(self, node):
        pass

    def close(self):
        pass

    def invoke(self, op, timeout):
        f, v = op["f"], op.get("value")
        if f in self.t.hang_on:
            time.sleep(timeout * 10)
        if f in self.t.raise_on:
            raise ConnectionResetError("fake reset")
        if self.t.latency:
            time.sleep(self.t.latency)
        d = self.t.data
        with self.t.lock:
            if f == "read":
                return {"type": "ok", "value": [v[0], d.get(v[0])]}
            if f == "write":
                d[v[0]] = v[1]
                return {"type": "ok", "value": v}
            if f == "cas":
                if d.get(v[0]) != v[1][0]:
                    return {"type": "fail", "value": v, "error": "cas-mismatch"}
                d[v[0]] = v[1][1]
                return {"type": "ok", "value": v}
            if f == "add":
                d.setdefault(("set", v[0]), []).append(v[1])
                return {"type": "ok", "value": v}
            if f == "read-list":
                return {"type": "ok", "value": [v[0], list(d.get(("set", v[0]), []))]}
            if f == "txn":
                out = []
                for mop in v:
                    kind, k, x = mop
                    if kind == "append":
                        d.setdefault(("list", k), []).append(x)
                        out.append(mop)
                    elif kind == "w":
                        d[("reg", k)] = x
                        out.append(mop)
                    else:
                        val = list(d.get(("list", k), [])) if ("list", k) in d else d.get(("reg", k))
                        out.append(["r", k, val])
                return {"type": "ok", "value": out}
        return {"type": "fail", "error": f"unknown f {f!r}"}
