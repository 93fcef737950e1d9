"""raftkv as a tectonic Target: deploys, starts, kills, pauses and tears down the server.

Every command goes through the node's Remote, so the same code runs on loopback, inside
network namespaces or over SSH. Under each node's directory:

  data/          the Raft data dir (removed by teardown)
  raftkv.log     the server's output (kept: it is what log_files collects)
  raftkv.pid     the server's pid
  clock-offset   this node's clock offset for libfaketime, e.g. "+5.000s"

The server runs under libfaketime (LD_PRELOAD) reading clock-offset on every clock read,
so set_clock_offset moves the node's wall clock -- the clock Raft's timeouts and leases
read (clock.py) -- at once. The monotonic clock stays real: the event loop keeps running.
"""
from __future__ import annotations

import os
import sys
import time

from core.errors import SetupError
from targets.daemon import Daemon
from targets.raftkv.client import RaftKVClient
from targets.raftkv.bugs import BUGS

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAKETIME_LIBRARIES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
)
# Server flags a spec may set under raftkv: (spec key, flag).
_FLAGS = (("election_timeout_min", "--election-timeout-min"),
          ("election_timeout_max", "--election-timeout-max"),
          ("heartbeat_interval", "--heartbeat-interval"),
          ("snapshot_every", "--snapshot-every"),
          ("lazy_sync_interval", "--lazy-sync-interval"))
HEALTH_KEY = "tectonic-health"


class RaftKVTarget(Daemon):
    name = "raftkv"
    process_mark = "targets.raftkv.server"

    def __init__(self, spec: dict, nodes: list):
        conf = dict(spec.get("raftkv") or {})
        self.port = int(conf.pop("port", 7000))
        self.bugs = list(spec.get("bugs") or [])
        unknown = [b for b in self.bugs if b not in BUGS]
        if unknown:
            raise ValueError(f"raftkv: unknown bug {unknown[0]!r} in spec field bugs "
                             f"(known: {', '.join(BUGS)})")
        self.flags: list[str] = []
        for key, flag in _FLAGS:
            if key in conf:
                self.flags += [flag, str(conf.pop(key))]
        use_faketime = conf.pop("faketime", True)
        if conf:
            raise ValueError(f"raftkv: unknown setting {sorted(conf)[0]!r} in spec field raftkv")
        self.use_faketime = use_faketime
        self._faketime: dict[str, str | None] = {}  # per node: the library found there
        self.nodes = list(nodes)
        self._pids: dict[str, int] = {}

    # ---- paths ---------------------------------------------------------------------------

    def data_dir(self, node) -> str:
        return os.path.join(node.dir, "data")

    def _log(self, node) -> str:
        return os.path.join(node.dir, "raftkv.log")

    def _pidfile(self, node) -> str:
        return os.path.join(node.dir, "raftkv.pid")

    def clock_offset_file(self, node) -> str:
        return os.path.join(node.dir, "clock-offset")

    # ---- lifecycle -----------------------------------------------------------------------

    def setup(self, node) -> None:
        node.remote.exec(["mkdir", "-p", self.data_dir(node)])
        if self.use_faketime:
            # Looked for on the node: a remote host need not have it where the controller does.
            found = node.remote.exec(["sh", "-c", 'for f in "$@"; do [ -e "$f" ] && echo "$f" && break; done',
                                      "sh", *FAKETIME_LIBRARIES], check=False).stdout.strip()
            self._faketime[node.name] = found or None
        self.set_clock_offset(node, 0.0, require=False)

    def start(self, node) -> None:
        if self._running_pid(node) is not None:
            return
        peers = ",".join(f"{n.name}={n.address}:{self.port}" for n in self.nodes)
        # A remote backend deploys the project on its hosts and says where (node.extra).
        python = node.extra.get("python", sys.executable)
        project_root = node.extra.get("project_root", PROJECT_ROOT)
        argv = [python, "-m", "targets.raftkv.server", "--id", node.name,
                "--peers", peers, "--data-dir", self.data_dir(node),
                "--listen", f"{node.address}:{self.port}", *self.flags]
        for bug in self.bugs:
            argv += ["--bug", bug]
        env = {"PYTHONPATH": project_root, "PYTHONUNBUFFERED": "1"}
        faketime = self.faketime_on(node)
        if faketime:
            env.update({"LD_PRELOAD": faketime,
                        "FAKETIME_TIMESTAMP_FILE": self.clock_offset_file(node),
                        # Re-read the offset on every clock read, so a change acts at once
                        # (the cache's granularity is whole seconds: too coarse).
                        "FAKETIME_NO_CACHE": "1",
                        "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
        self._pids[node.name] = node.remote.spawn(argv, log=self._log(node),
                                                  pidfile=self._pidfile(node), env=env,
                                                  cwd=project_root)

    def wait_healthy(self, nodes: list, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        problem = "no node answered"
        while time.monotonic() < deadline:
            leader = self.leader(nodes)
            if leader is None:
                problem = "no leader elected"
            else:
                client = self.client(leader)
                client.open(leader)
                try:
                    done = client.invoke({"f": "write", "value": [HEALTH_KEY, 1]}, 2.0)
                finally:
                    client.close()
                if done["type"] == "ok":
                    return
                problem = f"a write through leader {leader.name} failed: {done.get('error')}"
            time.sleep(0.1)
        raise SetupError(f"raftkv not healthy after {timeout:.0f}s: {problem} "
                         f"(see {', '.join(self._log(n) for n in nodes)})")

    def log_files(self, node) -> list[str]:
        return [self._log(node)]

    def leader(self, nodes: list):
        best = None
        for node in nodes:
            status = self.status(node)
            if status and status["state"] == "leader" and (best is None or status["term"] > best[0]):
                best = (status["term"], node)
        return best[1] if best else None

    def client(self, node) -> RaftKVClient:
        return RaftKVClient(self.port)

    def status(self, node, timeout: float = 0.5) -> dict | None:
        """The node's own view: state, term, leader, commit, applied, time (its clock)."""
        client = RaftKVClient(self.port, connect_timeout=timeout)
        client.open(node)
        try:
            return client.status(timeout)
        finally:
            client.close()

    # ---- clock ---------------------------------------------------------------------------

    def faketime_on(self, node) -> str | None:
        """The libfaketime library set up found on this node (None: its clock is real)."""
        return self._faketime.get(node.name)

    def set_clock_offset(self, node, seconds: float, require: bool = True) -> None:
        """Move this node's clock `seconds` away from the true time (0 puts it back)."""
        if self.faketime_on(node) is None:
            if require:
                raise SetupError(f"raftkv: clock faults need libfaketime on {node.name} "
                                   "(apt-get install -y faketime)")
            return
        # One fixed-width write over the old text, never truncating: libfaketime re-reads
        # the file on every clock read and must never see it empty or half written.
        text = f"{seconds:+.3f}s".ljust(23) + "\n"
        node.remote.exec(["dd", f"of={self.clock_offset_file(node)}", "conv=notrunc",
                          "status=none"], input=text)
