"""Whether a clock fault moved the clock the node's target sees.

A target's set_clock_offset can return without moving anything (a faketime library the
process never loaded, an offset file it does not read), and the history would record a
skew that never was. So after a bump the harness reads the clock as the node sees it:

- a node on a host of its own (`node.clock`, ssh): the host's clock, read on the node;
- a target process under libfaketime (what tectonic's targets do for the Clock
  capability): a clock read by a fresh process on the node started with the target
  process's own LD_PRELOAD and FAKETIME* environment, taken from /proc/<pid>/environ of a
  process the node's Remote started for the target (observe.py), so the reading goes
  through exactly the library and offset file the target's process uses.

The reading is bracketed by the controller's clock before and after, so the offset is
known to within half the round trip. Anything else (a Clock capability done some other
way, a node whose target process is down) is recorded as not checked, with why.
"""
from __future__ import annotations

import time

from .observe import target_processes

SLACK = 0.25  # seconds of error allowed beyond half the round trip (process start-up)
_READ_CLOCK = "import time; print(repr(time.time()))"


def observe_offset(node, expected: float) -> tuple[bool | None, str]:
    """(True: the node's clock is `expected` seconds off the true time, False: it is not,
    None: could not be checked) and what was seen, in the history's words."""
    if node.clock is not None:
        argv = [node.python, "-c", _READ_CLOCK]
    else:
        env = _faketime_environment(node)
        if isinstance(env, str):
            return None, f"not checked: {env}"
        argv = ["env", "-i", *env, node.python, "-c", _READ_CLOCK]
    before = time.time()
    res = node.remote.exec(argv, timeout=10, check=False)
    after = time.time()
    try:
        seen = float(res.stdout.strip()) - (before + after) / 2
    except ValueError:
        why = (res.stderr or res.stdout or "").strip().splitlines()
        return None, f"not checked: reading the clock failed{': ' + why[-1] if why else ''}"
    if abs(seen - expected) <= (after - before) / 2 + SLACK:
        return True, f"clock reads {seen:+.3f} s (set {expected:+.3f} s)"
    return False, f"clock reads {seen:+.3f} s off the true time, though set to {expected:+.3f} s"


def _faketime_environment(node) -> list[str] | str:
    """LD_PRELOAD=... and FAKETIME*=... of a target process on node, or why there is none."""
    processes = target_processes(node)
    if processes is None:
        return "the node's Remote started no process of the target"
    if not processes:
        return "no process of the target runs there"
    for pid in sorted(processes):
        res = node.remote.exec(["cat", f"/proc/{pid}/environ"], timeout=10, check=False)
        pairs = [p for p in res.stdout.split("\0") if p.startswith(("LD_PRELOAD=", "FAKETIME"))]
        if any(p.startswith("LD_PRELOAD=") and "faketime" in p for p in pairs):
            return pairs
    return "the target's processes do not run under libfaketime"
