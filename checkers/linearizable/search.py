"""The WGL search (Wing & Gong, with Lowe's cache of configurations), for one object.

The history is a doubly-linked list of entries in history order: an invocation entry and
a completion entry per call whose outcome is known. Walking from the head, every
invocation met before the first completion entry is a candidate: it was invoked before
the earliest pending op returned, so it may take effect next. Linearizing a candidate
lifts its two entries out of the list and restarts from the head; meeting a completion
entry means its op should already have happened, so the search backtracks. When every
known call is linearized the history is linearizable.

Calls of unknown outcome (`info`, never completed) have no completion entry: they may
happen at any point after their invocation or never, so they live in a second list,
tried only after the known candidates (a valid history rarely needs them, and trying
them first, as list order would, sends the search down wrong branches first).

The cache holds every configuration visited: the set of linearized calls (an int used as
a bitset) and the model state. A configuration seen before cannot lead anywhere new.
Linearized calls are kept as two bitsets, known and unknown calls, because a
configuration is also *dominated* by one with the same known calls and state whose
unknown calls are a subset: an indeterminate op not applied yet may still be applied
later or never, so fewer applied is never worse. Each (known bitset, state) key keeps
the minimal unknown-call subsets seen; without this, k pending indeterminate writes
multiply the configurations by 2**k (the etcd logs have a dozen).

Explanations need where the search got furthest: the completion entry with the highest
history position that was ever reached (all known calls returning before it linearized,
Knossos's "highest contiguous linearized" op). Its op is the one that cannot be
linearized; the stack at that moment is the longest partial linearization. Copying the
stack on every new furthest point would cost O(n**2) on long valid histories, so the
copy only takes what changed since the last one (`low`: the lowest the stack got since).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .models import UNKNOWN

MAX_FINALS = 32       # configurations kept at the furthest point, for the explanation
CHECK_EVERY = 4096    # new configurations between looks at the clock


@dataclass
class Outcome:
    valid: Any                               # True, False or "unknown"
    configurations: int = 0                  # cache entries made
    reason: str | None = None                # why "unknown"
    stuck_at: int | None = None              # call that cannot be linearized (furthest point)
    path: list[tuple[int, Any]] = field(default_factory=list)   # (call, state after), in order
    finals: list[tuple[frozenset, Any, int | None]] = field(default_factory=list)
    # finals: at the furthest point, (linearized calls, state, last call linearized)


def search(calls: list, model, *, deadline: float | None = None,
           max_entries: int | None = None) -> Outcome:
    """Decide whether `calls` (of one object, in invocation order) linearize under `model`.

    `deadline` is a time.monotonic() value, `max_entries` caps the cache; past either the
    answer is "unknown" with the reason."""
    steps = searching(calls, model, deadline=deadline, max_entries=max_entries)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def searching(calls: list, model, *, deadline: float | None = None,
              max_entries: int | None = None):
    """The search as a generator: it yields the number of configurations made every
    CHECK_EVERY new ones, so that a driver can interleave keys or stop one, and returns
    the Outcome (see `search`)."""
    oks = [i for i, c in enumerate(calls) if c.ret is not None]
    infos = [i for i, c in enumerate(calls) if c.ret is None]
    n_ok, n_info = len(oks), len(infos)
    if n_ok == 0:
        return Outcome(True)
    step = model.step

    # The list of known calls: entry 0 is the head, entries 1..E the events in history
    # order, E+1 a tail. ent[e] is x for the invocation of known call x, ~x for its
    # completion; lifting relinks around an entry and keeps its own links for unlifting.
    events = []
    for x, cid in enumerate(oks):
        c = calls[cid]
        events.append((c.inv, x))
        events.append((c.ret, ~x))
    events.sort()
    n_ev = len(events)
    ent: list[Any] = [None] * (n_ev + 2)
    ret_entry = [0] * n_ok
    for k, (_, x) in enumerate(events, 1):
        ent[k] = x
        if x < 0:
            ret_entry[~x] = k
    nxt = list(range(1, n_ev + 3))
    prv = list(range(-1, n_ev + 1))
    rpos = [calls[cid].ret for cid in oks]
    oinp = [calls[cid].inp for cid in oks]
    oout = [calls[cid].out for cid in oks]
    obit = [1 << x for x in range(n_ok)]
    pure = [model.read_only(calls[cid].inp, calls[cid].out) for cid in oks]

    # The list of calls of unknown outcome, in invocation order: head 0, nodes 1..n, tail
    # n+1 whose invocation position is infinite so that every scan stops there.
    inxt = list(range(1, n_info + 3))
    iprv = list(range(-1, n_info + 1))
    iinv = [-1] + [calls[cid].inv for cid in infos] + [float("inf")]
    iinp = [None] + [calls[cid].inp for cid in infos]
    ibit = [0] + [1 << j for j in range(n_info)]

    cache: dict = {}
    count = 0
    clock = time.monotonic

    state = model.init()
    okb = ib = 0
    remaining = n_ok
    stack: list[tuple] = []   # (entry, state before) for known calls, (-node, state before, limit) for unknown
    best = -1                 # furthest completion position reached
    best_x = -1
    best_stack: list[tuple] = []
    best_state = None
    low = 0
    finals: list[tuple] = []

    e = nxt[0]
    scan_known = True
    while True:
        if scan_known:
            while True:
                x = ent[e]
                if x < 0:
                    break
                ok, s2 = step(state, oinp[x], oout[x])
                if ok:
                    nb = okb | obit[x]
                    key = (nb, s2)
                    seen = cache.get(key)
                    if seen is None:
                        cache[key] = ib
                    elif not _remember(cache, key, seen, ib):
                        e = nxt[e]
                        continue
                    count += 1
                    if not count & (CHECK_EVERY - 1):
                        why = _over_budget(count, max_entries, deadline, clock)
                        if why:
                            return Outcome("unknown", count, why)
                        yield count
                    stack.append((e, state))
                    r = ret_entry[x]
                    p, n = prv[e], nxt[e]
                    nxt[p] = n
                    prv[n] = p
                    p, n = prv[r], nxt[r]
                    nxt[p] = n
                    prv[n] = p
                    okb = nb
                    state = s2
                    remaining -= 1
                    if not remaining:
                        return Outcome(True, count)
                    e = nxt[0]
                    continue
                e = nxt[e]
            # Met the completion of known call ~x: the candidates left are the unknown
            # calls invoked before it.
            limit = rpos[~x]
            if limit > best:
                best, best_x = limit, ~x
                best_stack = best_stack[:low] + stack[low:]
                low = len(stack)
                best_state = state
                finals = [(okb, ib, state, stack[-1] if stack else None)]
            elif limit == best and len(finals) < MAX_FINALS:
                finals.append((okb, ib, state, stack[-1] if stack else None))
            f = inxt[0]

        while True:
            if iinv[f] < limit:
                ok, s2 = step(state, iinp[f], UNKNOWN)
                if ok:
                    nib = ib | ibit[f]
                    key = (okb, s2)
                    seen = cache.get(key)
                    if seen is None:
                        cache[key] = nib
                    elif not _remember(cache, key, seen, nib):
                        f = inxt[f]
                        continue
                    count += 1
                    if not count & (CHECK_EVERY - 1):
                        why = _over_budget(count, max_entries, deadline, clock)
                        if why:
                            return Outcome("unknown", count, why)
                        yield count
                    stack.append((-f, state, limit))
                    p, n = iprv[f], inxt[f]
                    inxt[p] = n
                    iprv[n] = p
                    ib = nib
                    state = s2
                    e = nxt[0]
                    scan_known = True
                    break
                f = inxt[f]
                continue
            # Nothing left to try here: backtrack. Past a read-only call, the other
            # candidates of its configuration need no trying: each would lead to a
            # configuration that the read-only call's own branch already covered
            # with it linearized earlier, which is never harder.
            while True:
                if not stack:
                    return _invalid(count, oks, infos, ent, best_x, best_stack, best_state, finals)
                top = stack.pop()
                if len(stack) < low:
                    low = len(stack)
                state = top[1]
                if top[0] < 0:
                    f = -top[0]
                    limit = top[2]
                    p, n = iprv[f], inxt[f]
                    inxt[p] = f
                    iprv[n] = f
                    ib ^= ibit[f]
                    break
                e = top[0]
                x = ent[e]
                r = ret_entry[x]
                p, n = prv[r], nxt[r]
                nxt[p] = r
                prv[n] = r
                p, n = prv[e], nxt[e]
                nxt[p] = e
                prv[n] = e
                okb ^= obit[x]
                remaining += 1
                if not pure[x]:
                    break
            if top[0] > 0:
                e = nxt[e]
                scan_known = True
                break
            f = inxt[f]


def _remember(cache: dict, key, seen, ib: int) -> bool:
    """Record unknown-call set `ib` under `key` unless a recorded subset dominates it;
    True if the configuration is new. `seen` is an int, or a tuple when several minimal
    sets were recorded."""
    if seen.__class__ is int:
        if seen | ib == ib:
            return False
        cache[key] = ib if ib | seen == seen else (seen, ib)
        return True
    for m in seen:
        if m | ib == ib:
            return False
    cache[key] = tuple(m for m in seen if m | ib != m) + (ib,)
    return True


def _over_budget(count, max_entries, deadline, clock) -> str | None:
    if max_entries is not None and count >= max_entries:
        return f"memory budget reached: {count} configurations cached (cap {max_entries})"
    if deadline is not None and clock() >= deadline:
        return f"time limit reached after {count} configurations"
    return None


def _invalid(count, oks, infos, ent, best_x, best_stack, best_state, finals) -> Outcome:
    # Stack items name entries of the search's own lists; turn them into call ids and
    # attach the state each one left behind.
    def call_of(item):
        return oks[ent[item[0]]] if item[0] > 0 else infos[-item[0] - 1]

    order = [call_of(item) for item in best_stack]
    states = [item[1] for item in best_stack[1:]] + [best_state]
    configs = []
    for okb, ib, state, last in finals:
        done = frozenset(_members(okb, oks) + _members(ib, infos))
        configs.append((done, state, call_of(last) if last is not None else None))
    return Outcome(False, count, stuck_at=oks[best_x], path=list(zip(order, states)), finals=configs)


def _members(bits: int, ids: list[int]) -> list[int]:
    """The ids whose bits are set, in O(n) (shifting a big int bit by bit is O(n**2))."""
    return [ids[j] for j, ch in enumerate(reversed(bin(bits)[2:])) if ch == "1"]
