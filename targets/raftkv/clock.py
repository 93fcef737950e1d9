"""The one clock raftkv reads for every timeout, heartbeat and lease.

It is the wall clock on purpose: the clock nemesis moves a node's wall clock with libfaketime
(an offset file per node), and a clock fault must reach everything that depends on time,
as it would on a real machine whose clock was stepped. The asyncio loop's own timers use the
monotonic clock, which the target leaves unfaked (FAKETIME_DONT_FAKE_MONOTONIC=1), so a jump
moves Raft's notion of time without freezing the event loop.
"""
import time


def now() -> float:
    """Seconds since the epoch, as this node's (possibly skewed) clock says."""
    return time.time()
