"""Any server program as a tectonic Target, described by a ProcessConfig (config.py).

Under each node's directory:

  data/              the node's data dir ({data_dir}; kept across kills when persistent)
  process.log        the program's stdout and stderr (collected with the run)
  process.pid        the pid tectonic spawned (the program, or the Maelstrom shim)
  node.pid           maelstrom only: the node binary's pid, written by the shim
  clock-offset       the node's clock offset for libfaketime

With protocol maelstrom the command is a Maelstrom node binary, run under the shim
(targets/maelstrom/shim.py), which is the node's network; otherwise the command is the
server itself and must not fork away from the pid tectonic started (use `exec` in a shell
wrapper), since kill and pause signal that pid.

Faults: kill is SIGKILL of every process of the node (the shim takes its node with it),
pause/resume SIGSTOP/SIGCONT of them all, a restart runs the command again; partitions and
loss need nothing from the target. Clock faults run the program under libfaketime, which
needs a dynamically linked program (linking.py): a static one is refused with the reason.
Every process is told apart from a later one with the same pid by TECTONIC_NODE_DIR in
its environment, which only this node's processes carry.
"""
from __future__ import annotations

import http.client
import os
import signal
import socket
import time
import urllib.parse

from core.errors import SetupError
from harness.protocols import Clock, DataDir, HealthCheck, Kill, LogFiles, NodeNeeds, Option, Pause, Target
from targets.process.config import as_opts, check_workload, parse_block
from targets.process.http_kv import HttpKVClient
from targets.process.linking import static_reason
from targets.process.local_checks import refuse_clock_on_static_program

FAKETIME_LIBRARIES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
)
MARK = "TECTONIC_NODE_DIR"


# The shim of a Maelstrom node, run by node.python from the uploaded targets package.
SHIM = NodeNeeds(python_modules=("targets.maelstrom.shim",))


class ProcessTarget(Target, HealthCheck, Kill, Pause, LogFiles, Clock, DataDir):
    """target_opts are the block of config.py; `leader` is not offered (the program does
    not say), so faults choose nodes without one."""
    name = "process"
    options = (
        Option("command", (list, str), None, "how to start one node, with {placeholders} (required)"),
        Option("port", int, 8000, "the port each node's server listens on"),
        Option("health", str, "tcp", "tcp, or an http:// URL answering 2xx when healthy"),
        Option("persistent", bool, True, "the data dir survives a kill"),
        Option("protocol", str, "http-kv", "how clients talk to it: http-kv or maelstrom"),
        Option("env", dict, {}, "extra environment for the command"),
    )
    features = frozenset({"register", "list-append"})  # as the protocol allows: validate

    @classmethod
    def config_of(cls, opts: dict, where: str = ""):
        return parse_block(opts, where)

    @classmethod
    def normalized(cls, opts: dict, config) -> dict:
        return as_opts(config)

    @classmethod
    def validate(cls, spec: dict) -> None:
        super().validate(spec)
        config = cls.config_of(spec["target_opts"])
        check_workload(config, spec["workload"], "")
        refuse_clock_on_static_program(spec, config, "")
        spec["target_opts"] = cls.normalized(spec["target_opts"], config)

    @classmethod
    def needs_for(cls, spec: dict) -> NodeNeeds:
        return SHIM if spec["target_opts"].get("protocol") == "maelstrom" else cls.needs

    def __init__(self, spec: dict, nodes: list):
        super().__init__(spec, nodes)
        self.config = self.config_of(self.opts)
        self.port = self.config.port
        self.wants_clock = "clock" in (spec.get("nemesis") or [])
        self._faketime: dict[str, str] = {}  # node name -> the library found there

    # ---- paths and the command ----------------------------------------------------------

    def data_dir(self, node) -> str:
        return os.path.join(node.dir, "data")

    def _log(self, node) -> str:
        return os.path.join(node.dir, "process.log")

    def _pidfile(self, node) -> str:
        return os.path.join(node.dir, "process.pid")

    def _node_pidfile(self, node) -> str:
        return os.path.join(node.dir, "node.pid")

    def clock_offset_file(self, node) -> str:
        return os.path.join(node.dir, "clock-offset")

    def placeholders(self, node) -> dict[str, str]:
        return {"node": node.name, "address": node.address, "port": str(self.port),
                "peers": ",".join(f"{n.name}={n.address}:{self.port}" for n in self.nodes),
                "data_dir": self.data_dir(node)}

    def argv(self, node) -> list[str]:
        values = self.placeholders(node)
        command = self.config.argv(values)
        if self.config.protocol != "maelstrom":
            return command
        # Run as a file, not `-m`: the shim needs only the standard library, and importing
        # the package around it would slow every (re)start. SHIM's one package, targets,
        # is in the one directory node.pythonpath names.
        shim = os.path.join(node.pythonpath[0], "targets", "maelstrom", "shim.py")
        return [node.python, shim, "--node", node.name,
                "--peers", values["peers"], "--cwd", self.data_dir(node),
                "--node-pidfile", self._node_pidfile(node), "--", *command]

    # ---- lifecycle ----------------------------------------------------------------------

    def setup(self, node) -> None:
        program = self.config.command[0]
        found = node.remote.exec(["sh", "-c", 'command -v "$1"', "sh", program], check=False)
        if found.returncode != 0 or not found.stdout.strip():
            raise SetupError(f"{self.name}: {program} is not an executable on {node.name} "
                             f"(check target_opts.command / bin, and chmod +x)")
        node.remote.exec(["mkdir", "-p", self.data_dir(node)])
        if self.wants_clock:
            self._faketime[node.name] = self._clock_hook(node, found.stdout.strip())
            self.set_clock_offset(node, 0.0)
        self.start(node)

    def start(self, node) -> None:
        if self._running(node):
            return
        if not self.config.persistent:
            node.remote.exec(["sh", "-c", 'rm -rf "$1" && mkdir -p "$1"', "sh", self.data_dir(node)])
        env = {MARK: node.dir, "PYTHONUNBUFFERED": "1", **self.config.env}
        library = self._faketime.get(node.name)
        if library:
            env.update({"LD_PRELOAD": library,
                        "FAKETIME_TIMESTAMP_FILE": self.clock_offset_file(node),
                        "FAKETIME_NO_CACHE": "1",  # an offset change acts at once
                        "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
        node.remote.exec(["rm", "-f", self._node_pidfile(node)], check=False)
        node.remote.spawn(self.argv(node), log=self._log(node), pidfile=self._pidfile(node),
                          env=env, cwd=self.data_dir(node))

    def wait_healthy(self, nodes: list, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(nodes)
        while waiting:
            node = waiting[0]
            if self._healthy(node):
                waiting.pop(0)
                continue
            if not self._pids(node, marked=False):
                raise SetupError(f"{self.name}: the process on {node.name} exited before it was "
                                 f"healthy; its log ends: {self._log_tail(node)!r} ({self._log(node)})")
            if time.monotonic() >= deadline:
                raise SetupError(f"{self.name}: {node.name} not healthy after {timeout:.0f}s "
                                 f"({self._health_words(node)}); its log ends: "
                                 f"{self._log_tail(node)!r} ({self._log(node)})")
            time.sleep(0.1)

    def kill(self, node) -> None:
        pids = self._pids(node)
        for pid in pids:
            node.remote.signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while self._pids(node) and time.monotonic() < deadline:
            time.sleep(0.02)

    def pause(self, node) -> None:
        for pid in self._pids(node):
            node.remote.signal(pid, signal.SIGSTOP)

    def resume(self, node) -> None:
        for pid in self._pids(node):
            node.remote.signal(pid, signal.SIGCONT)

    def teardown(self, node) -> None:
        pids = self._pids(node)
        for pid in pids:
            node.remote.signal(pid, signal.SIGCONT)  # a stopped process cannot die politely
        for pid in pids[:1]:
            node.remote.signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        while self._pids(node) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self._pids(node):
            node.remote.signal(pid, signal.SIGKILL)
        node.remote.exec(["rm", "-rf", self.data_dir(node), self._pidfile(node),
                          self._node_pidfile(node), self.clock_offset_file(node)], check=False)

    def log_files(self, node) -> list[str]:
        return [self._log(node)]

    def client(self, node):
        if self.config.protocol == "maelstrom":
            # Imported here: targets.maelstrom builds on this module.
            from targets.maelstrom.client import MaelstromClient
            return MaelstromClient(self.port)
        return HttpKVClient(self.port)

    # ---- clock --------------------------------------------------------------------------

    def set_clock_offset(self, node, seconds: float) -> None:
        """Move this node's clock `seconds` away from the true time (0 puts it back)."""
        if node.name not in self._faketime:
            raise SetupError(f"{self.name}: clock faults were not set up on {node.name}")
        # One fixed-width write over the old text, never truncating: libfaketime re-reads
        # the file on every clock read and must never see it empty or half written.
        text = f"{seconds:+.3f}s".ljust(23) + "\n"
        node.remote.exec(["dd", f"of={self.clock_offset_file(node)}", "conv=notrunc",
                          "status=none"], input=text)

    def _clock_hook(self, node, program: str) -> str:
        def read(path: str, nbytes: int) -> bytes:
            res = node.remote.exec(["od", "-An", "-v", "-tx1", f"-N{nbytes}", path], check=False)
            return bytes.fromhex(res.stdout) if res.returncode == 0 else b""

        def which(name: str) -> str | None:
            res = node.remote.exec(["sh", "-c", 'command -v "$1"', "sh", name], check=False)
            return res.stdout.strip() or None

        reason = static_reason(program, read, which)
        if reason:
            raise SetupError(f"{self.name}: clock faults refused on {node.name}: {reason}, so "
                             f"libfaketime (LD_PRELOAD) cannot move its clock")
        found = node.remote.exec(["sh", "-c", 'for f in "$@"; do [ -e "$f" ] && echo "$f" && break; done',
                                  "sh", *FAKETIME_LIBRARIES], check=False).stdout.strip()
        if not found:
            raise SetupError(f"{self.name}: clock faults need libfaketime on {node.name} "
                             f"(apt-get install -y faketime)")
        return found

    # ---- processes ----------------------------------------------------------------------

    def _pids(self, node, marked: bool = True) -> list[int]:
        """This node's running processes: the spawned one first, then the Maelstrom node.
        marked=False skips the mark, for just after the start: until the new process has
        exec'd it still has its parent's environment."""
        pids = []
        for pidfile in (self._pidfile(node), self._node_pidfile(node)):
            res = node.remote.exec(["cat", pidfile], check=False)
            text = res.stdout.strip()
            if res.returncode == 0 and text.isdigit() and self._is_ours(node, int(text), marked):
                pids.append(int(text))
        return pids

    def _running(self, node) -> bool:
        return bool(self._pids(node))

    def _is_ours(self, node, pid: int, marked: bool = True) -> bool:
        """Alive, not a zombie, and (marked) carrying this node's mark, so never a reused pid."""
        res = node.remote.exec(["sh", "-c", 'cat "/proc/$1/stat" && tr "\\0" "\\n" < "/proc/$1/environ"',
                                "sh", str(pid)], check=False)
        return res.returncode == 0 and ") Z " not in res.stdout and \
            (not marked or f"\n{MARK}={node.dir}\n" in res.stdout)

    def _healthy(self, node) -> bool:
        url = self.config.health_url(self.placeholders(node))
        if url is None:
            try:
                with socket.create_connection((node.address, self.port), timeout=0.5):
                    return True
            except OSError:
                return False
        # http.client, not urllib: no proxy from the environment may carry the probe away.
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=1.0)
        try:
            conn.request("GET", parts.path or "/")
            return 200 <= conn.getresponse().status < 300
        except (OSError, ValueError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _health_words(self, node) -> str:
        url = self.config.health_url(self.placeholders(node))
        return f"{node.address}:{self.port} accepts no connection" if url is None else \
            f"{url} does not answer 2xx"

    def _log_tail(self, node) -> str:
        res = node.remote.exec(["tail", "-n", "1", self._log(node)], check=False)
        return res.stdout.strip()[-300:]
