"""Benchmark: what the shim costs a Maelstrom node, against the node answering directly.

  .venv/bin/python bench/maelstrom.py [--duration 5] [--node tests/maelstrom_nodes/primary_kv.py]

The node (any lin-kv Maelstrom binary; by default the tests' fixed-primary node, run as a
program, not imported) is driven three ways, reads then writes, one closed-loop client:

  direct     the bench writes requests to the node's stdin and reads its stdout, as
             Maelstrom's own harness does: the node's own speed
  shim       tectonic's client, over TCP, to the shim of the primary (3 nodes on loopback)
  forwarded  the same, to a backup's shim: the backup forwards over UDP to the primary

and shim with 10 clients. Phases run in halves A B B A so each way sees the same background
load. Prints ops/s and p50/p99 latency per phase and the ratio to direct, then headline lines
`<name>: <value> <unit> (target <target>)`: one client's reads through the shim keep at least
a quarter of the direct rate (a TCP hop and a process hop per request, on a node that does
almost nothing per read), and ten clients through the shim at least match one direct client.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from harness.protocols import HostRemote, Node  # noqa: E402
from load import register_ops, run_phase, summarize  # noqa: E402  (bench/load.py)
from targets.maelstrom import MaelstromTarget  # noqa: E402

DEFAULT_NODE = os.path.join(ROOT, "tests", "maelstrom_nodes", "primary_kv.py")
KEYS = 100


class Direct:
    """One node on pipes: make_op for run_phase (one client only)."""

    def __init__(self, node: str, workdir: str):
        self.proc = subprocess.Popen([node], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=workdir)
        self.ids = itertools.count(1)
        self.call({"type": "init", "node_id": "n1", "node_ids": ["n1"]})

    def call(self, body: dict) -> dict:
        msg_id = next(self.ids)
        msg = {"src": "c1", "dest": "n1", "body": {**body, "msg_id": msg_id}}
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            reply = json.loads(self.proc.stdout.readline())["body"]
            if reply.get("in_reply_to") == msg_id:
                return reply

    def ops(self, writes: bool):
        def make_op(i):
            counter = itertools.count()

            def op():
                n = next(counter)
                body = {"type": "write", "key": n % KEYS, "value": n} if writes else \
                    {"type": "read", "key": n % KEYS}
                return self.call(body)["type"] in ("write_ok", "read_ok", "error")
            return op
        return make_op

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=5.0, help="seconds per half phase")
    p.add_argument("--node", default=DEFAULT_NODE, help="a lin-kv Maelstrom node binary")
    args = p.parse_args()
    workdir = tempfile.mkdtemp(prefix="tectonic-bench-maelstrom-")
    nodes = [Node(f"n{i}", f"127.0.93.{i}", HostRemote(), os.path.join(workdir, f"n{i}"),
                  pythonpath=MaelstromTarget.needs.local_pythonpath()) for i in (1, 2, 3)]
    spec = {"target_opts": {"bin": os.path.abspath(args.node), "port": 7593}, "nemesis": []}
    target = MaelstromTarget(spec, nodes)
    direct = None
    try:
        for node in nodes:
            target.setup(node)
        target.wait_healthy(nodes, 30)
        os.makedirs(os.path.join(workdir, "direct"))
        direct = Direct(os.path.abspath(args.node), os.path.join(workdir, "direct"))
        headline = {}
        for kind, writes in (("reads", 0.0), ("writes", 1.0)):
            ways = {"direct": (direct.ops(writes > 0), 1),
                    "shim": (register_ops(target, nodes, 0, writes, KEYS), 1),
                    "forwarded": (register_ops(target, nodes, 1, writes, KEYS), 1),
                    "shim x10": (register_ops(target, nodes, 0, writes, KEYS), 10)}
            runs = {way: [] for way in ways}
            for order in (list(ways), list(reversed(ways))):
                for way in order:
                    make_op, clients = ways[way]
                    runs[way].append(run_phase(make_op, clients, args.duration / 2))
            base = summarize(*runs["direct"])["ops"]
            for way, done in runs.items():
                s = summarize(*done)
                print(f"{kind:6} {way:10} {s['ops']:8.0f} ops/s  p50 {s['p50']:6.2f} ms  "
                      f"p99 {s['p99']:6.2f} ms  errors {s['errors']}  x{s['ops'] / base:.2f} of direct")
                headline[kind, way] = s["ops"] / base
        print(f"maelstrom-shim-reads-1-client: {headline['reads', 'shim']:.2f} x direct (target >= 0.25 x)")
        print(f"maelstrom-shim-reads-10-clients: {headline['reads', 'shim x10']:.2f} x direct (target >= 1.0 x)")
    finally:
        if direct is not None:
            direct.close()
        for node in nodes:
            target.teardown(node)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
