"""Lock histories, and when they break mutual exclusion, judged without a checker.

`lock_history` simulates clients of a lock service that sometimes grants the lock to a
second contender while another still holds it (as etcd does when a holder's lease expires
under it), with ops that fail, time out (`info`, and the thread goes on as a new process)
or never complete. `overlapping_holds` is the plain-eyes judgement of a lock history: two
processes each between an acquire that succeeded and the start of their release, at once.
For a lock without owners (the `mutex` model) a history is linearizable exactly when no two
holds overlap, which makes the pair a test of the checker and of what a run found.
"""
from __future__ import annotations

import random


def lock_history(rng: random.Random, *, processes: int, n_ops: int, double_grant: float) -> list[dict]:
    """Up to `n_ops` acquire / release invocations by `processes` threads; an acquire while
    the lock is taken fails, except with probability `double_grant`."""
    history, t = [], 0
    threads = list(range(processes))
    next_process = processes
    pending: dict[int, str] = {}   # process -> f of its open invocation
    believes_held: set[int] = set()
    holder = None                  # who the service thinks holds the lock

    def retire(p):
        nonlocal next_process
        threads[threads.index(p)] = next_process
        next_process += 1
        believes_held.discard(p)

    while n_ops or pending:
        t += 1
        idle = [p for p in threads if p not in pending]
        if n_ops and idle and (not pending or rng.random() < 0.5):
            p = rng.choice(idle)
            f = "release" if p in believes_held else "acquire"
            history.append({"type": "invoke", "process": p, "f": f, "value": None, "time": t})
            pending[p] = f
            n_ops -= 1
            continue
        p = rng.choice(sorted(pending))
        f = pending.pop(p)
        kind = rng.choices(["ok", "info", "fail", "never"], [0.75, 0.1, 0.1, 0.05])[0]
        if f == "acquire" and kind == "ok" and holder not in (None, p) and rng.random() >= double_grant:
            kind = "fail"
        if kind == "never":  # the invocation stays open to the end
            retire(p)
            continue
        history.append({"type": kind, "process": p, "f": f, "value": None, "time": t})
        if kind == "ok" and f == "acquire":
            believes_held.add(p)
            holder = p
        elif kind == "ok":
            believes_held.discard(p)
            holder = None if holder == p else holder
        elif kind == "info":
            if rng.random() < 0.5:  # the timed-out op did take effect
                if f == "release" and holder == p:
                    holder = None
                elif f == "acquire" and holder is None:
                    holder = p  # held by a retired process: only a double grant gets past it
            retire(p)
    return history


def overlapping_holds(h: list[dict]) -> list[tuple]:
    """[(hold, hold)] of different processes that overlap; a hold is (process, from the
    acquire's ok, to the invoke of the release that did not fail). A hold whose release
    never came (the run's time ran out while it held the lock) lasts to the end of the
    history, as the checker's lock stays taken too."""
    holds, since, releasing = [], {}, {}
    for op in h:
        p = op["process"]
        if op["f"] == "acquire" and op["type"] == "ok":
            since[p] = op["time"]
        elif op["f"] == "release" and p in since:
            if op["type"] == "invoke":
                releasing[p] = op["time"]
            elif op["type"] == "fail":
                releasing.pop(p, None)
            else:
                holds.append((p, since.pop(p), releasing.pop(p)))
    # Still held at the end, or released by an invocation that never completed (that one
    # may have taken effect as soon as it was sent).
    holds += [(p, t, releasing.get(p, float("inf"))) for p, t in since.items()]
    return [(a, b) for i, a in enumerate(holds) for b in holds[i + 1:]
            if a[0] != b[0] and a[1] < b[2] and b[1] < a[2]]
