"""A target's server process on a node: found by its pidfile, never mistaken for another.

Both targets run one daemon per node, started through the node's Remote with a pidfile,
and fault it the same way: SIGKILL (and wait until it is gone), SIGSTOP, SIGCONT, and at
teardown a polite SIGTERM before the SIGKILL. A subclass says where the pidfile and the
data dir are, and what its command line contains, so a pid the kernel gave to some other
process since is never signalled.
"""
from __future__ import annotations

import signal
import time

from harness.protocols import DataDir, Kill, Pause


class Daemon(Kill, Pause, DataDir):
    """Mixin giving a target the Kill, Pause and DataDir capabilities and its teardown. Needs
    `_pids` (node name -> pid we spawned), `_pidfile(node)`, `data_dir(node)`,
    `process_mark`, a string in the daemon's command line, and `start(node)`."""

    process_mark: str
    _pids: dict

    def _pid(self, node) -> int | None:
        pid = self._pids.get(node.name)
        if pid is None:
            res = node.remote.exec(["cat", self._pidfile(node)], check=False)
            if res.returncode != 0 or not res.stdout.strip().isdigit():
                return None
            pid = int(res.stdout.strip())
        return pid

    def _running_pid(self, node) -> int | None:
        """The daemon's pid if it runs now: never one that exited, is a zombie, or was
        reused by another process."""
        pid = self._pid(node)
        if pid is None:
            return None
        res = node.remote.exec(["cat", f"/proc/{pid}/stat", f"/proc/{pid}/cmdline"], check=False)
        if res.returncode != 0 or ") Z " in res.stdout or self.process_mark not in res.stdout:
            return None
        return pid

    def _wait_gone(self, node, seconds: float, poll: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._running_pid(node) is not None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def kill(self, node) -> None:
        pid = self._running_pid(node)
        if pid is not None:
            node.remote.signal(pid, signal.SIGKILL)
            self._wait_gone(node, 5.0, 0.02)

    def pause(self, node) -> None:
        pid = self._running_pid(node)
        if pid is not None:
            node.remote.signal(pid, signal.SIGSTOP)

    def resume(self, node) -> None:
        pid = self._running_pid(node)
        if pid is not None:
            node.remote.signal(pid, signal.SIGCONT)

    def teardown(self, node) -> None:
        pid = self._running_pid(node)
        if pid is not None:
            node.remote.signal(pid, signal.SIGCONT)  # a paused process cannot die politely
            node.remote.signal(pid, signal.SIGTERM)
            if not self._wait_gone(node, 3.0, 0.05):
                node.remote.signal(pid, signal.SIGKILL)
        node.remote.exec(["rm", "-rf", self.data_dir(node), self._pidfile(node)], check=False)
        self._pids.pop(node.name, None)
