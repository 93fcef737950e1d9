"""What runs on a node, as the harness sees it: not as the target says.

A fault that silently does nothing makes a test pass that tested nothing (a target whose
kill looks for the wrong process, say). So kill and pause check their effect against the
node's kernel, never against the target's own bookkeeping: the node's Remote records every
process it spawned (protocols.Remote.spawned), each the leader of a session of its own, and
the target's processes on the node are whatever still runs in those sessions. One command
on the node reads every process's state from /proc.

Our own helpers spawned on a node (the delay fault's delayer, the disk fault's lazy
filesystem, probe servers: `python -m nemesis.<module>`) are not the target's.
"""
from __future__ import annotations

import time

# Reads every process's /proc/<pid>/stat in one go; a process that exits meanwhile is
# skipped (cat says so on stderr and goes on).
_READ_STATS = ["sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null; true"]
GONE_STATES = frozenset("ZX")     # a zombie has exited: only its parent's wait is left
STOPPED_STATES = frozenset("Tt")  # stopped by a signal, or by a tracer


class FaultWithoutEffect(Exception):
    """A fault that had no effect on a node: an error of the run, never a verdict. `value`
    is what the nemesis op did and observed up to then (recorded in the history)."""

    def __init__(self, message: str, value=None):
        super().__init__(message)
        self.value = value


def _is_helper(argv: list[str]) -> bool:
    return any(a == "-m" and i + 1 < len(argv) and argv[i + 1].startswith("nemesis.")
               for i, a in enumerate(argv))


def started_sessions(node) -> list[int] | None:
    """The sessions the node's Remote started for the target (the spawned pids), or None
    when the Remote keeps no record (then what runs there cannot be observed)."""
    spawned = getattr(node.remote, "spawned", None)
    if spawned is None:
        return None
    return [pid for pid, argv in list(spawned) if not _is_helper(argv)]


def parse_stats(text: str) -> dict[int, tuple[str, int]]:
    """pid -> (state, session) from concatenated /proc/<pid>/stat lines. The command name
    sits in parentheses and may hold spaces or parentheses itself: fields are read after
    the last ')'."""
    out = {}
    for line in text.splitlines():
        head, _, tail = line.rpartition(")")
        fields = tail.split()
        pid = head.split(" (", 1)[0].strip()
        if len(fields) < 4 or not pid.isdigit() or not fields[3].lstrip("-").isdigit():
            continue
        out[int(pid)] = (fields[0], int(fields[3]))
    return out


def target_processes(node) -> dict[int, str] | None:
    """pid -> state ("R", "S", "T", ...) of every live process in the sessions the node's
    Remote started for the target; {} when none runs; None when the Remote keeps no record
    of what it started, or started nothing for the target."""
    sessions = started_sessions(node)
    if not sessions:
        return None
    wanted = set(sessions)
    res = node.remote.exec(_READ_STATS, timeout=10, check=False)
    return {pid: state for pid, (state, session) in parse_stats(res.stdout).items()
            if session in wanted and state not in GONE_STATES}


def wait_for(node, done, seconds: float, poll: float = 0.02) -> dict[int, str]:
    """Observe node until done(processes) holds or `seconds` pass; the last observation.
    A fault's effect is usually there at the first look: the wait is only for a loaded
    machine or a remote node that takes a moment."""
    deadline = time.monotonic() + seconds
    while True:
        seen = target_processes(node) or {}
        if done(seen) or time.monotonic() >= deadline:
            return seen
        time.sleep(poll)


def describe(processes: dict[int, str]) -> str:
    """e.g. "pid 123 (S), pid 130 (R)"."""
    return ", ".join(f"pid {pid} ({state})" for pid, state in sorted(processes.items()))


def kill_and_confirm(node, kill, what: str, settle: float = 2.0) -> str:
    """kill(node), then what was seen: "gone (pid ...)" once nothing of the target runs
    there, "already down", or "not checked: ..." when the Remote keeps no record; a kill
    that leaves the target running raises FaultWithoutEffect naming `what` (e.g. "disk
    crash"). For faults that kill on the way to something else (a disk crash)."""
    before = target_processes(node)
    kill(node)
    if before is None:
        return "not checked: the node's Remote started no process of the target"
    if not before:
        return "already down"
    after = wait_for(node, lambda seen: not seen, settle)
    if after:
        raise FaultWithoutEffect(f"{what} of {node.name} had no effect: {describe(after)} "
                                 f"still {'run' if len(after) > 1 else 'runs'}")
    return f"gone ({describe(before)})"
