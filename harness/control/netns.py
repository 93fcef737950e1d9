"""Thin wrappers over iproute2 for network namespaces: run a command, list, kill, delete.

Commands are argument vectors with a timeout; a failure raises ClusterError carrying the
command and what it printed, so the user sees the one line that explains it.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time

from core.errors import SetupError

log = logging.getLogger("tectonic.control")

NETNS_DIR = "/run/netns"
COMMAND_TIMEOUT = 15.0


class ClusterError(SetupError):
    """Creating, using or removing the local cluster failed: a missing tool, a name taken,
    a command the host refused. The user fixes the host, so it is a SetupError (exit 254)."""


def run(argv: list[str], *, check: bool = True, input: str | None = None,
        timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    if shutil.which(argv[0]) is None:
        raise ClusterError(f"{argv[0]} not found: the local backend needs iproute2 and iptables "
                           f"(apt-get install -y iproute2 iptables)")
    log.debug("run %s", argv)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise ClusterError(f"{' '.join(argv)}: no answer within {timeout}s") from e
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(argv)} exited {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout).strip()[:500]}")
    return proc


def exec_prefix(netns: str) -> list[str]:
    """The argv prefix that runs a command inside netns."""
    return ["ip", "netns", "exec", netns]


def list_netns() -> list[str]:
    """Names of the named network namespaces (as `ip netns list` shows them)."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def netns_pids(netns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", netns], check=False)
    return [int(p) for p in proc.stdout.split()]


def netns_inode(netns: str) -> int:
    """The namespace's identity: the inode its name is bound to (as /proc/PID/ns/net shows
    it), which outlives the name if someone deletes that."""
    return os.stat(os.path.join(NETNS_DIR, netns)).st_ino


def pids_in_netns_inode(inode: int) -> list[int]:
    """Every process whose network namespace is `inode`, named or not."""
    want = f"net:[{inode}]"
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/net") == want:
                    pids.append(int(entry))
            except OSError:
                continue  # exited, or a kernel thread
    return pids


def process_description(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmdline = ""
    return f"pid {pid} ({cmdline[:120] or 'exited'})"


def kill_netns_processes(netns: str, timeout: float = 5.0, *, inode: int | None = None) -> list[int]:
    """SIGKILL every process in netns and wait until none is left; return their pids.

    Repeats until the namespace is empty, because a process may fork while being killed.
    With `inode` (netns_inode at creation), a namespace whose name was deleted from under
    its test is still found: its processes live on, unnamed, until killed.
    """
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        if inode is not None and netns not in list_netns():
            pids = pids_in_netns_inode(inode)
        else:
            pids = netns_pids(netns)
        if not pids:
            return killed
        if time.monotonic() > deadline:
            raise ClusterError(f"processes {pids} in namespace {netns} survive SIGKILL")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if pid not in killed:
                killed.append(pid)
        time.sleep(0.01)


def delete_netns(netns: str) -> None:
    proc = run(["ip", "netns", "delete", netns], check=False)
    if proc.returncode != 0 and netns in list_netns():
        raise ClusterError(f"cannot delete namespace {netns}: {proc.stderr.strip()}")


def link_names(netns: str | None = None) -> list[str]:
    """Interface names in netns (the controller's own namespace when None)."""
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-o", "link", "show"]
    names = []
    for line in run(argv).stdout.splitlines():
        # "7: tec1a2b3c-c@if6: <BROADCAST,...>" -> tec1a2b3c-c
        parts = line.split(":", 2)
        if len(parts) == 3:
            names.append(parts[1].strip().split("@", 1)[0])
    return names


def delete_link(name: str, netns: str | None = None) -> None:
    argv = ["ip"] + (["-n", netns] if netns else []) + ["link", "delete", name]
    proc = run(argv, check=False)
    if proc.returncode != 0 and name in link_names(netns):
        raise ClusterError(f"cannot delete link {name}: {proc.stderr.strip()}")
