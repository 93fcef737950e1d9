"""A one-primary key-value store that keeps nothing on disk: what a kill of every node
does to it is total data loss, which the register workload must catch.

Every node runs the server (`python -m tests.memory_kv ADDRESS PORT`, one JSON request
per line, one JSON answer per line), but clients all talk to the first node's, so while
it runs the store is trivially linearizable. `MemoryKV` is a real target for the harness:
started through the node's Remote, killed and paused by targets/daemon.py.
`MarklessMemoryKV` looks for its process under a mark its command line does not carry
(the mistake a new target's author makes), so its kill and pause signal nothing.
"""
from __future__ import annotations

import json
import os
import socket
import socketserver
import sys
import threading
import time

from harness.protocols import HealthCheck, NodeNeeds, Option, Target
from targets.daemon import Daemon


class MemoryKV(Daemon, Target, HealthCheck):
    name = "memory-kv"
    process_mark = "tests.memory_kv"
    options = (Option("port", int, 7300, "the port every node listens on"),)
    needs = NodeNeeds(python_modules=("tests.memory_kv",))
    features = frozenset({"register"})

    def __init__(self, spec, nodes):
        super().__init__(spec, nodes)
        self._pids: dict[str, int] = {}

    def data_dir(self, node) -> str:
        return os.path.join(node.dir, "data")  # empty: the store is in memory

    def _pidfile(self, node) -> str:
        return os.path.join(node.dir, "kv.pid")

    def setup(self, node) -> None:
        node.remote.exec(["mkdir", "-p", self.data_dir(node)])
        self.start(node)

    def start(self, node) -> None:
        if self._running_pid(node) is not None:
            return
        self._pids[node.name] = node.remote.spawn(
            [node.python, "-m", "tests.memory_kv", node.address, str(self.opts["port"])],
            log=os.path.join(node.dir, "kv.log"), pidfile=self._pidfile(node),
            env={"PYTHONPATH": os.pathsep.join(node.pythonpath)})

    def wait_healthy(self, nodes, timeout) -> None:
        deadline = time.monotonic() + timeout
        for node in nodes:
            while True:
                try:
                    socket.create_connection((node.address, self.opts["port"]), 1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def client(self, node):
        return KVClient(self.nodes[0].address, self.opts["port"])


class MarklessMemoryKV(MemoryKV):
    name = "markless-kv"
    process_mark = "tests.some_other_server"


class KVClient:
    def __init__(self, address, port):
        self.address, self.port = address, port
        self.sock = None

    def open(self, node):
        pass  # connects on first use: a down primary fails the op, not the client

    def invoke(self, op, timeout):
        if self.sock is None:
            try:
                self.sock = socket.create_connection((self.address, self.port), timeout)
            except OSError as e:  # nothing sent: certainly not applied
                return {"type": "fail", "error": f"connect: {e}"}
            self.lines = self.sock.makefile("rb")
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(json.dumps({"f": op["f"], "value": op["value"]}).encode() + b"\n")
            line = self.lines.readline()
            if not line:
                raise ConnectionResetError("server closed the connection")
            return json.loads(line)
        except (OSError, ValueError) as e:  # sent, maybe applied: uncertain
            self.close()
            return {"type": "info", "error": str(e)}

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            with self.server.lock:  # one op at a time: cas is a read and a write
                answer = _apply(self.server.data, json.loads(line))
            self.wfile.write(json.dumps(answer).encode() + b"\n")


def _apply(data: dict, op: dict) -> dict:
    key, value = op["value"]
    if op["f"] == "write":
        data[key] = value
    elif op["f"] == "cas":
        if data.get(key) != value[0]:
            return {"type": "fail", "error": "cas-mismatch"}
        data[key] = value[1]
    else:
        value = data.get(key)
    return {"type": "ok", "value": [key, value]}


def main(address: str, port: int) -> None:
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    server = socketserver.ThreadingTCPServer((address, port), _Handler)
    server.data, server.lock = {}, threading.Lock()
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
