"""Independent linearizable registers: read, write and compare-and-set on rotating keys.

Values are Jepsen's independent tuples [key, v]. Keys are checked separately, so every
key's history stays small enough for the linearizability search while the test as a whole
runs long. A thread moves to its next key after `per_thread` of its own ops, and a key must
outlive a fault: a kill of every node that loses all data shows only on a key written
before the kill and read after the restart. Counting ops alone does not give that: while
the cluster is down ops fail at once, and a key of 200 ops would be used up during the
outage, its successor begun on the empty store. So a key lasts at least `key_life` seconds
at the spec's rate (per_thread = rate / concurrency * key_life): during an outage ops are
no faster than the rate, so the key outlives it. By default, with crash faults (kill, disk)
in the test, three nemesis intervals: whenever a key begins, a whole fault (start, hold,
stop) falls inside its life. Under the other faults ops do not fail faster than they
succeed (a cut-off or paused node's clients wait out their timeouts), so keys keep the
lengths the bug recipes were tuned with. `ops_per_key` (default 200, across all threads)
is the least a key gets.

A thread's k-th op depends on (seed, thread, k) and the spec alone, never on the clock,
so it is the same in every run of the spec.
"""
from __future__ import annotations

import math

from harness import generator as gen

from . import Workload

# A key's life in nemesis intervals. The schedule rests an interval, holds a fault an
# interval, and again: a key living three intervals from any moment contains a whole hold
# and some time on each side of it.
KEY_LIFE_INTERVALS = 3
# Faults that take nodes down, so that their clients' ops fail at once (connection refused).
CRASH_FAULTS = frozenset({"kill", "disk"})


def key_life(spec: dict) -> float:
    """Seconds a key lives at least (at the spec's rate): workload_opts.key_life, else
    KEY_LIFE_INTERVALS nemesis intervals when the test has crash faults, else 0."""
    opts = spec.get("workload_opts") or {}
    if "key_life" in opts:
        life = opts["key_life"]
        if isinstance(life, bool) or not isinstance(life, (int, float)) or life < 0:
            raise ValueError(f"key_life must be a number of seconds >= 0, got {life!r}")
        return float(life)
    if not CRASH_FAULTS & set(spec.get("nemesis") or ()):
        return 0.0
    return KEY_LIFE_INTERVALS * float(spec.get("nemesis_interval") or 0)


def ops_per_thread(spec: dict) -> int:
    """How many of its own ops a thread makes on each key."""
    opts = spec.get("workload_opts") or {}
    concurrency = max(1, int(spec.get("concurrency") or 1))
    by_count = int(opts.get("ops_per_key", 200)) // concurrency
    rate = float(spec.get("rate") or 0)  # 0: unlimited, so no op count lasts a given time
    by_time = math.ceil(rate / concurrency * key_life(spec)) if rate else 0
    return max(1, by_count, by_time)


def make_workload(spec: dict) -> Workload:
    from checkers.linearizable import LinearizableChecker

    opts = spec.get("workload_opts") or {}
    values = int(opts.get("values", 5))
    per_thread = ops_per_thread(spec)

    def op(thread, k, draws):
        key = k // per_thread
        r = draws.random()
        if r < 0.5:
            return {"f": "read", "value": [key, None]}
        if r < 0.75:
            return {"f": "write", "value": [key, draws.randrange(values)]}
        return {"f": "cas", "value": [key, [draws.randrange(values), draws.randrange(values)]]}

    checker = LinearizableChecker("cas-register", initial=None, nil_read="absent", independent=True,
                                  time_limit=float(opts.get("check_time_limit", 120)))
    return Workload("register", gen.per_thread(op), {"linearizable": checker},
                    needs={"register"})
