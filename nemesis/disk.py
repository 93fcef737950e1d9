"""Disk faults: a node crashes and loses what its target wrote but did not fsync.

Before the target starts, each node's data dir gets a lazy filesystem of its own
(nemesis/lazyfs.py, FUSE): writes stay in memory until fsync. start-disk "crashes" the
chosen nodes: the target is killed (SIGKILL), then the filesystem forgets every write not
yet fsynced, or with `torn` keeps only a random prefix of them (a write cut short by the
power cut); stop-disk (and heal) restarts the crashed nodes. With `rolling` the chosen
nodes crash one at a time instead: each is restarted and answers again before the next
goes down, so never more than one node is down, and the nodes holding the newest data go
first (the leader, then the longest logs), the order that leaves a write on the fewest
disks. A target that fsyncs what it acknowledges loses nothing that matters; one that does
not (raftkv --bug no-fsync) loses acknowledged writes without a majority ever being down
at once: a rolling crash of the leader and the follower that acknowledged with it, while a
third node is cut off (README, "Lost un-fsynced writes").

The filesystem's process runs in the node's network namespace (so `tectonic clean` finds
and kills it with the namespace's processes) but mounts in the controller's mount
namespace, where the target's processes inherit the mount when they start. Its mount is
named `<chain tag>-disk` (harness/control/names.py), so clean can unmount it after a
SIGKILLed controller. Local backend only.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from harness.control.names import chain_tag
from harness.protocols import HostRemote

from .choose import allowed_selections, choose_nodes, names
from .local_only import refuse_unless_local
from .observe import FaultWithoutEffect, kill_and_confirm
from .start_stop import StartStopFault

START, STOP = "start-disk", "stop-disk"
MOUNT_TIMEOUT = 15.0  # seconds for a lazy filesystem to mount and answer
UP_TIMEOUT = 15.0     # seconds for a node crashed in a rolling crash to answer again
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mount_name(test_id: str) -> str:
    """The fsname of a test's lazy filesystems: its chain tag and "-disk"."""
    return f"{chain_tag(str(test_id))}-disk"


class LazyDisks:
    """One lazy filesystem over each node's data dir; `unmount` takes them all away.

    Mount before the target's setup (an empty data dir is mounted over; its files live in
    a backing dir beside it), unmount after the target's teardown."""

    def __init__(self, nodes: list, data_dir, test_id: str, seed: int):
        refuse_unless_local(nodes, "disk", "a FUSE filesystem mounted beside each node")
        if shutil.which("fusermount3") is None:
            raise ValueError("disk faults need FUSE 3 (apt-get install -y fuse3)")
        self.nodes = list(nodes)
        self.data_dir = data_dir  # node -> the target's data dir on it
        self.name = mount_name(test_id)
        self.seed = seed
        self.mounts: dict[str, str] = {}  # node name -> mount point
        self.pids: dict[str, int] = {}    # node name -> its filesystem's process

    def control(self, node) -> str:
        return os.path.join(node.dir, "lazyfs.sock")

    def mount(self) -> None:
        for i, node in enumerate(self.nodes):
            mount, backing = self.data_dir(node), os.path.join(node.dir, "disk-backing")
            os.makedirs(mount, exist_ok=True)
            os.makedirs(backing, exist_ok=True)
            # nsenter --net keeps the controller's mount namespace, where the mount must be.
            remote = HostRemote(wrap=["nsenter", f"--net=/run/netns/{node.netns}", "--"])
            self.pids[node.name] = remote.spawn([sys.executable, "-m", "nemesis.lazyfs", "--backing", backing,
                          "--mount", mount, "--control", self.control(node), "--name", self.name,
                          "--seed", str(self.seed + i)],
                         log=os.path.join(node.dir, "lazyfs.log"),
                         pidfile=os.path.join(node.dir, "lazyfs.pid"),
                         env={"PYTHONPATH": _PROJECT_ROOT}, cwd=_PROJECT_ROOT)
            self.mounts[node.name] = mount
        for node in self.nodes:
            self._wait_mounted(node)

    def _wait_mounted(self, node) -> None:
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while True:
            try:
                if os.path.ismount(self.mounts[node.name]):
                    self.ask(node, {"do": "pending"})
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the lazy filesystem on {node.name} did not mount within "
                                   f"{MOUNT_TIMEOUT:.0f}s (see {os.path.join(node.dir, 'lazyfs.log')})")
            time.sleep(0.05)

    def ask(self, node, request: dict) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(self.control(node))
            sock.sendall((json.dumps(request) + "\n").encode())
            answer = json.loads(sock.makefile().readline())
        if "error" in answer:
            raise RuntimeError(f"lazy filesystem on {node.name}: {answer['error']}")
        return answer

    def unmount(self) -> None:
        """Unmount every mount (lazily, so a process still holding a file cannot block it),
        then stop the filesystems' processes: libfuse does not always leave its loop when
        its mount goes, but it does on SIGTERM."""
        errors = []
        for name, mount in list(self.mounts.items()):
            proc = subprocess.run(["umount", "-l", mount], capture_output=True, text=True)
            if proc.returncode != 0 and os.path.ismount(mount):
                errors.append(f"{mount}: {proc.stderr.strip()}")
                continue
            del self.mounts[name]
            pid = self.pids.pop(name, None)
            if pid is not None:
                _stop(pid)
        if errors:
            raise RuntimeError("cannot unmount lazy filesystems: " + "; ".join(errors))


def _stop(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM pid, and SIGKILL it if it is still there after timeout."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return ") Z " not in f.read()  # a zombie is gone: the spawner's reaper collects it
    except OSError:
        return False


class DiskNemesis(StartStopFault):
    """start-disk: value None (the rng picks one of opts["disk_targets"]), a selection, a
    list of node names, or {"targets": ..., "torn": bool, "rolling": bool} (defaults
    opts["disk_torn"], opts["disk_rolling"], both False). Completed: {"targets", "crashed":
    [nodes, in crash order], "torn", "rolling", "lost": {node: {"files", "bytes"}}, "observed":
    {node: what its kill left running (observe.py)}}, what each crash lost; a rolling crash also gives "up": {node: seconds it was down}.
    stop-disk: {"restarted": [nodes]}. Rolling needs a target with status(node) (raftkv)
    to tell when a node answers again and how far its log reaches."""

    kind = "disk"

    def __init__(self, nodes: list, target, rng, opts: dict):
        disks = opts.get("disks")
        if not isinstance(disks, LazyDisks):
            raise ValueError("disk faults need the nodes' data dirs on lazy filesystems, "
                             "mounted before the target starts (tectonic test does it)")
        self.disks = disks
        self.nodes = list(nodes)
        self.target = target
        self.rng = rng
        self.allowed = allowed_selections("disk", opts)
        self.torn = opts.get("disk_torn", False)
        self.rolling = opts.get("disk_rolling", False)
        for key, value in (("disk_torn", self.torn), ("disk_rolling", self.rolling)):
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false, got {value!r}")
        if self.rolling and not callable(getattr(target, "status", None)):
            raise ValueError("disk_rolling needs a target that reports each node's status "
                             f"(to restart one node before the next goes down); "
                             f"{getattr(target, 'name', target)!r} does not")
        self.crashed: list = []

    def start(self, value) -> dict:
        torn, rolling = self.torn, self.rolling
        if isinstance(value, dict):
            torn = value.get("torn", torn)
            rolling = value.get("rolling", rolling)
            value = value.get("targets")
        selection, chosen = choose_nodes(value, self.nodes, self.target, self.rng, self.allowed)
        if rolling:
            return {"targets": selection, "torn": bool(torn), "rolling": True,
                    **self._rolling(chosen, bool(torn))}
        lost, observed = {}, {}
        result = {"targets": selection, "crashed": names(chosen), "torn": bool(torn),
                  "rolling": False, "lost": lost, "observed": observed}
        for node in chosen:
            if node not in self.crashed:
                self.crashed.append(node)  # stop restarts it, whatever happens next
            observed[node.name] = self._kill(node, result)
            lost[node.name] = self.disks.ask(node, {"do": "crash", "torn": bool(torn)})
        return result

    def _kill(self, node, result: dict) -> str:
        """Kill node's target, confirmed on the node (observe.py); FaultWithoutEffect,
        carrying `result` for the history, if it still runs."""
        try:
            return kill_and_confirm(node, self.target.kill, "disk crash")
        except FaultWithoutEffect as e:
            result["observed"][node.name] = f"no effect: {e}"
            raise FaultWithoutEffect(str(e), result) from None

    def _rolling(self, chosen: list, torn: bool) -> dict:
        """Crash chosen one at a time, newest data first; each restarts and answers again
        before the next goes down."""
        status = {n.name: self._status(n) for n in chosen}

        def newest_first(node):
            s = status[node.name] or {}
            return (s.get("state") != "leader", -s.get("last_index", 0))
        order = sorted(chosen, key=newest_first)
        lost, up, observed = {}, {}, {}
        result = {"crashed": names(order), "lost": lost, "up": up, "observed": observed}
        for node in order:
            down_at = time.monotonic()
            self.crashed.append(node)
            observed[node.name] = self._kill(node, result)
            lost[node.name] = self.disks.ask(node, {"do": "crash", "torn": torn})
            self.target.start(node)
            self.crashed.remove(node)
            deadline = down_at + UP_TIMEOUT
            while self._status(node) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{node.name} did not answer within {UP_TIMEOUT:.0f}s "
                                       f"of its restart; the rolling crash stops there")
                time.sleep(0.01)
            up[node.name] = round(time.monotonic() - down_at, 3)
        return result

    def _status(self, node) -> dict | None:
        try:
            return self.target.status(node, timeout=0.3)
        except Exception:  # noqa: BLE001 - a node still starting has no status yet
            return None

    def stop(self) -> dict:
        restarted, errors = [], []
        for node in list(self.crashed):
            try:
                self.target.start(node)
            except Exception as e:  # one node that will not start must not keep the rest down
                errors.append(e)
                continue
            self.crashed.remove(node)
            restarted.append(node.name)
        if errors:
            raise errors[0]
        return {"restarted": restarted}
