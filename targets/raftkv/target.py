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
import time

from core.errors import SetupError, SpecError
from harness.protocols import (Clock, HealthCheck, LogFiles, Membership, NodeNeeds, Option, Primary,
                               Target)
from targets.daemon import Daemon
from targets.raftkv.bugs import BUGS
from targets.raftkv.client import RaftKVClient

FAKETIME_LIBRARIES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
)
# The server's knobs, each passed as --<name with dashes> (server.py has the same defaults).
_SERVER_FLAGS = (
    Option("election_timeout_min", float, 0.3, "seconds: shortest randomized election timeout"),
    Option("election_timeout_max", float, 0.6, "seconds: longest randomized election timeout"),
    Option("heartbeat_interval", float, 0.05, "seconds between the leader's heartbeats"),
    Option("tick", float, 0.01, "seconds between the server's timer ticks"),
    # Small messages make a lagging follower catch up one entry per round trip: the window
    # in which a majority holds an old leader's entry but not the new leader's first one.
    Option("max_entries_per_message", int, 512, "log entries in one AppendEntries"),
    Option("max_inflight_entries", int, 8192, "entries sent to a follower before it acknowledges"),
    Option("snapshot_every", int, 10_000, "log entries between snapshots"),
    Option("lazy_sync_interval", float, 2.0, "seconds between fsyncs under the no-fsync bug"),
)
HEALTH_KEY = "tectonic-health"
MEMBERSHIP_TIMEOUT = 20.0  # seconds a membership change may take before it is given up on
# Answers after which a membership change is worth asking again (a leader being elected,
# a change still committing, a request lost).
_RETRY = ("no-leader", "leader-unreachable", "not-leader", "refused", "timeout",
          "forward-connection-lost", "connect", "connection", "outcome-unknown")


class RaftKVTarget(Daemon, Target, HealthCheck, Primary, LogFiles, Clock, Membership):
    name = "raftkv"
    process_mark = "targets.raftkv.server"
    options = (Option("port", int, 7000, "the port every node listens on"),
               *_SERVER_FLAGS,
               Option("faketime", bool, True, "run the servers under libfaketime, for clock faults"))
    needs = NodeNeeds(python_modules=("targets.raftkv.server",))
    features = frozenset({"register", "set", "list-append", "rw-register", "counter", "bank"})

    @classmethod
    def validate(cls, spec: dict) -> None:
        unknown = [b for b in spec.get("bugs") or [] if b not in BUGS]
        if unknown:
            raise SpecError(f"raftkv: unknown bug {unknown[0]!r} in spec field bugs "
                            f"(known: {', '.join(BUGS)})")
        opts = spec["target_opts"]
        if opts["election_timeout_min"] > opts["election_timeout_max"]:
            raise SpecError(f"raftkv: target_opts.election_timeout_min "
                            f"({opts['election_timeout_min']}) is above election_timeout_max "
                            f"({opts['election_timeout_max']})")
        for option in cls.options:
            value = opts[option.name]
            if option.type in (int, float) and value <= 0:
                raise SpecError(f"raftkv: target_opts.{option.name} must be above 0, got {value}")

    def __init__(self, spec: dict, nodes: list):
        super().__init__(spec, nodes)
        self.validate({**spec, "target_opts": self.opts})
        self.port = self.opts["port"]
        self.bugs = list(spec.get("bugs") or [])
        self.flags: list[str] = []
        for option in _SERVER_FLAGS:
            self.flags += ["--" + option.name.replace("_", "-"), str(self.opts[option.name])]
        self.use_faketime = self.opts["faketime"]
        self._faketime: dict[str, str | None] = {}  # per node: the library found there
        self._pids: dict[str, int] = {}
        # Nodes removed from the configuration and wiped: they start as new servers
        # (--join, no configuration of their own) until a configuration change adds them.
        self._joining: set[str] = set()

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
        self._write_clock_offset(node, 0.0)
        self.start(node)

    def start(self, node) -> None:
        if self._running_pid(node) is not None:
            return
        peers = ",".join(f"{n.name}={n.address}:{self.port}" for n in self.nodes)
        argv = [node.python, "-m", "targets.raftkv.server", "--id", node.name,
                "--peers", peers, "--data-dir", self.data_dir(node),
                "--listen", f"{node.address}:{self.port}", *self.flags]
        for bug in self.bugs:
            argv += ["--bug", bug]
        if node.name in self._joining:
            argv.append("--join")
        env = {"PYTHONPATH": os.pathsep.join(node.pythonpath), "PYTHONUNBUFFERED": "1"}
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
                                                  cwd=node.dir)

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

    def set_clock_offset(self, node, seconds: float) -> None:
        """Move this node's clock `seconds` away from the true time (0 puts it back)."""
        if self.faketime_on(node) is None:
            why = ("target_opts.faketime is off" if not self.use_faketime
                   else "apt-get install -y faketime")
            raise SetupError(f"raftkv: clock faults need libfaketime on {node.name} ({why})")
        self._write_clock_offset(node, seconds)

    def _write_clock_offset(self, node, seconds: float) -> None:
        if self.faketime_on(node) is None:
            return
        # One fixed-width write over the old text, never truncating: libfaketime re-reads
        # the file on every clock read and must never see it empty or half written.
        text = f"{seconds:+.3f}s".ljust(23) + "\n"
        node.remote.exec(["dd", f"of={self.clock_offset_file(node)}", "conv=notrunc",
                          "status=none"], input=text)

    # ---- membership ----------------------------------------------------------------------

    def members(self, nodes: list) -> list[str]:
        """The configuration the current leader has in force (every other node follows it)."""
        deadline = time.monotonic() + MEMBERSHIP_TIMEOUT
        while True:
            status = self._leader_status(nodes)
            if status is not None:
                return sorted(status["members"])
            if time.monotonic() >= deadline:
                raise SetupError(f"raftkv: no leader to ask for the members within "
                                 f"{MEMBERSHIP_TIMEOUT:.0f}s")
            time.sleep(0.1)

    def remove_member(self, node, nodes: list) -> list[str]:
        members = self._change("remove", node, nodes)
        # Committed: the server is out for good. Stopped and wiped, it comes back as an
        # empty spare that belongs to no configuration (its clients get "no-leader").
        self._wipe_as_spare(node)
        return members

    def add_member(self, node, nodes: list) -> list[str]:
        if node.name not in self._joining and node.name not in self.members(nodes):
            # Out of the configuration by a change whose answer was lost: never wiped yet.
            self._wipe_as_spare(node)
        self.start(node)
        return self._change("add", node, nodes)

    def _wipe_as_spare(self, node) -> None:
        self.kill(node)
        node.remote.exec(["sh", "-c", 'rm -rf "$1"/* && mkdir -p "$1"', "sh",
                          self.data_dir(node)])
        self._pids.pop(node.name, None)
        self._joining.add(node.name)
        self.start(node)

    def _leader_status(self, nodes: list) -> dict | None:
        best = None
        for n in nodes:
            status = self.status(n)
            if status and status["state"] == "leader" and (best is None or status["term"] > best["term"]):
                best = status
        return best

    def _change(self, action: str, node, nodes: list) -> list[str]:
        """Ask the leader to add or remove node; return the members once the change has
        committed. Asked again after answers that leave it undone (no leader yet, another
        change committing, an answer lost), until MEMBERSHIP_TIMEOUT."""
        deadline = time.monotonic() + MEMBERSHIP_TIMEOUT
        problem = "no leader"
        while time.monotonic() < deadline:
            status = self._leader_status(nodes)
            if status is not None:
                done = (node.name in status["members"]) == (action == "add")
                if done and status["config_index"] <= status["commit"]:
                    return sorted(status["members"])
                if not done:
                    leader = next(n for n in nodes if n.name == status["node"])
                    client = RaftKVClient(self.port)
                    client.open(leader)
                    try:
                        answer = client.request({"members": {action: node.name}},
                                                max(0.5, min(5.0, deadline - time.monotonic())))
                    finally:
                        client.close()
                    error = answer.get("error") or ""
                    if answer["type"] != "ok" and not error.startswith(_RETRY) and \
                            not error.startswith(("already-a-member", "not-a-member")):
                        raise SetupError(f"raftkv: {action} {node.name}: {error}")
                    problem = error or "committing"
                else:
                    problem = "the change is not committed yet"
            time.sleep(0.1)
        raise SetupError(f"raftkv: {action} {node.name} not done within "
                         f"{MEMBERSHIP_TIMEOUT:.0f}s ({problem}); the change may still happen")
