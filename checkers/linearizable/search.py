"""The WGL search (Wing & Gong, with Lowe's cache of configurations), for one object.

A configuration is a set of linearized calls and the model state they lead to. Its
candidates are the calls invoked before the first completion still pending: each may
take effect next. The search is a depth-first walk: linearize a legal candidate, move
to the new configuration, and when no candidate is left, backtrack. When every call
whose outcome is known is linearized, the history is linearizable; when the search
backtracks out of the first configuration, it is not. The calls live in doubly-linked
lists sorted by invocation, so candidates are a prefix ("invoked before the limit") and
linearizing lifts a call out in O(1) (Knuth's dancing links, as in Porcupine and Knossos).

Calls of unknown outcome (`info`, never completed) have no completion: they may happen
at any point after their invocation, or never. They are tried last, since a valid
history rarely needs them (trying them first, as plain WGL does, sends the search down
wrong branches first).

Three prunings, each argued where it is used:
- The cache: a configuration seen before cannot lead anywhere new. A configuration is
  also *dominated* by one with the same known calls and state but a subset of the
  unknown-outcome calls applied (those not applied yet may still happen later, or
  never). Each (known calls, state) key keeps its minimal unknown-call subsets; without
  this, k pending indeterminate writes multiply the configurations by 2**k.
- Read-only calls first (`Model.read_only`): when a read-only call is legal, taking it
  now is never worse than taking it later (it changes no state and relaxes real-time
  constraints), so it is the only branch tried, and the other candidates of that
  configuration need no trying after it fails.
- Known calls are numbered in completion order, so the linearized ones are "every call
  below `base`" plus a small bitset above it: cache keys stay small on long histories
  (a plain bitset of 10,000 calls costs more to hash than the step it guards).

Explanations need where the search got furthest: the pending completion with the
highest history position ever reached (all known calls returning before it linearized,
Knossos's "highest contiguous linearized" op). Its call is the one that cannot be
linearized; the stack at that moment is the longest partial linearization. Copying the
stack at every new furthest point would cost O(n**2) on long valid histories, so only
what changed since the last copy is copied (`low`: the lowest the stack got since).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .models import NOT_EXACT, UNKNOWN

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


@dataclass(frozen=True)
class Budget:
    """What one search may spend: until `deadline` (a time.monotonic() value), at most
    `max_entries` cached configurations, at most `max_memory` more bytes of memory than
    its process held when it started. Past any of them the answer is "unknown"."""
    deadline: float | None = None
    max_entries: int | None = None
    max_memory: int | None = None

    def watch(self) -> Callable[[int], str | None]:
        """Start watching, in the process that searches: a function of the number of
        configurations so far, saying why the budget is spent (or None)."""
        memory_cap = None if self.max_memory is None else _memory_used() + self.max_memory

        def spent(count: int) -> str | None:
            if self.max_entries is not None and count >= self.max_entries:
                return f"memory budget reached: {count} configurations cached (cap {self.max_entries})"
            if memory_cap is not None and _memory_used() >= memory_cap:
                return (f"memory budget reached: the search grew past {self.max_memory >> 20} MiB "
                        f"({count} configurations cached)")
            if self.deadline is not None and time.monotonic() >= self.deadline:
                return f"time limit reached after {count} configurations"
            return None
        return spent


def _memory_used() -> int:
    """This process's resident memory in bytes (its peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def search(calls: list, model, budget: Budget = Budget()) -> Outcome:
    """Decide whether `calls` (of one object, in invocation order) linearize under `model`
    within `budget`."""
    steps = searching(calls, model, budget)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def searching(calls: list, model, budget: Budget = Budget()):
    """The search as a generator: it yields the number of configurations made every
    CHECK_EVERY new ones, so that a driver can interleave keys or stop one, and returns
    the Outcome (see `search`)."""
    # Known calls are numbered in completion order, x = 0, 1, ...: the linearized ones
    # are then all x < base plus the few in the bitset `rel` (bit i: x = base + i), and
    # (base, rel) is small however long the history (Knossos numbers them the same way).
    oks = sorted((i for i, c in enumerate(calls) if c.ret is not None), key=lambda i: calls[i].ret)
    infos = [i for i, c in enumerate(calls) if c.ret is None]
    n_ok, n_info = len(oks), len(infos)
    if n_ok == 0:
        return Outcome(True)
    step = model.step
    rpos = [calls[cid].ret for cid in oks]
    oinp = [calls[cid].inp for cid in oks]
    oout = [calls[cid].out for cid in oks]
    pure = [model.read_only(calls[cid].inp, calls[cid].out) for cid in oks]
    # Most read-only calls are reads legal in one state only: compare, don't call step.
    exact = [model.observed_state(calls[cid].inp, calls[cid].out) if pure[x] else NOT_EXACT
             for x, cid in enumerate(oks)]

    # Four doubly-linked lists of nodes 1..n between a head 0 and a tail n+1; lifting
    # relinks around a node and keeps the node's own links for unlifting (dancing
    # links). The pending completions of known calls, in history order (node x + 1 is
    # call x): the first is the limit. The invocations of known read-only calls, of
    # known state-changing calls and of calls of unknown outcome, each in invocation
    # order; a tail's invocation position is infinite, so "while inv < limit" stops.
    rnxt, rprv = _links(n_ok)
    px = [-1] + sorted((x for x in range(n_ok) if pure[x]), key=lambda x: calls[oks[x]].inv)
    kx = [-1] + sorted((x for x in range(n_ok) if not pure[x]), key=lambda x: calls[oks[x]].inv)
    pinv = [-1] + [calls[oks[x]].inv for x in px[1:]] + [INF]
    kinv = [-1] + [calls[oks[x]].inv for x in kx[1:]] + [INF]
    pnxt, pprv = _links(len(px) - 1)
    knxt, kprv = _links(len(kx) - 1)
    iinv = [-1] + [calls[cid].inv for cid in infos] + [INF]
    iinp = [None] + [calls[cid].inp for cid in infos]
    ibit = [0] + [1 << j for j in range(n_info)]
    inxt, iprv = _links(n_info)

    cache: dict = {}
    count = 0
    spent = budget.watch()

    state = model.init()
    base = rel = ib = 0
    remaining = n_ok
    stack: list[tuple] = []   # (phase, node, state, limit, base, rel) before each linearized call
    best = -1                 # furthest completion position reached
    best_x = -1
    best_stack: list[tuple] = []
    best_state = None
    low = 0
    finals: list[tuple] = []

    phase = ENTER
    while True:
        if phase == ENTER:
            # A new configuration: its candidates are the calls invoked before the
            # first pending completion.
            x = rnxt[0] - 1
            limit = rpos[x]
            if limit > best:
                best, best_x = limit, x
                del best_stack[low:]
                best_stack.extend(stack[low:])
                low = len(stack)
                best_state = state
                finals = [(base, rel, ib, state, stack[-1] if stack else None)]
            elif limit == best and len(finals) < MAX_FINALS:
                finals.append((base, rel, ib, state, stack[-1] if stack else None))

            # Read-only candidates first: if one is legal here, linearizing it now is
            # never worse than later, so its branch is the only one worth taking.
            node = pnxt[0]
            while pinv[node] < limit:
                x = px[node]
                s2 = exact[x]
                if s2 is NOT_EXACT:
                    ok, s2 = step(state, oinp[x], oout[x])
                else:
                    ok = s2 == state
                if ok:
                    nrel = rel | 1 << (x - base)
                    nbase = base
                    if nrel & 1:
                        shift = (~nrel & (nrel + 1)).bit_length() - 1
                        nbase += shift
                        nrel >>= shift
                    key = (nbase, nrel, s2)
                    seen = cache.get(key)
                    if seen is None:
                        cache[key] = ib
                    elif not _remember(cache, key, seen, ib):
                        # Its branch is covered already, and it covers the others:
                        # nothing left to try here (an info scan that ends at once).
                        phase, node = INFO, n_info + 1
                        break
                    count += 1
                    if not count & (CHECK_EVERY - 1):
                        why = spent(count)
                        if why:
                            return Outcome("unknown", count, why)
                        yield count
                    stack.append((PURE, node, state, limit, base, rel))
                    p, n = pprv[node], pnxt[node]
                    pnxt[p] = n
                    pprv[n] = p
                    r = x + 1
                    p, n = rprv[r], rnxt[r]
                    rnxt[p] = n
                    rprv[n] = p
                    base = nbase
                    rel = nrel
                    state = s2
                    remaining -= 1
                    if not remaining:
                        return Outcome(True, count)
                    break
                node = pnxt[node]
            else:
                phase = KNOWN
                node = knxt[0]
            if phase == ENTER:
                continue

        if phase == KNOWN:
            while kinv[node] < limit:
                x = kx[node]
                ok, s2 = step(state, oinp[x], oout[x])
                if ok:
                    nrel = rel | 1 << (x - base)
                    nbase = base
                    if nrel & 1:
                        shift = (~nrel & (nrel + 1)).bit_length() - 1
                        nbase += shift
                        nrel >>= shift
                    key = (nbase, nrel, s2)
                    seen = cache.get(key)
                    if seen is None:
                        cache[key] = ib
                    elif not _remember(cache, key, seen, ib):
                        node = knxt[node]
                        continue
                    count += 1
                    if not count & (CHECK_EVERY - 1):
                        why = spent(count)
                        if why:
                            return Outcome("unknown", count, why)
                        yield count
                    stack.append((KNOWN, node, state, limit, base, rel))
                    p, n = kprv[node], knxt[node]
                    knxt[p] = n
                    kprv[n] = p
                    r = x + 1
                    p, n = rprv[r], rnxt[r]
                    rnxt[p] = n
                    rprv[n] = p
                    base = nbase
                    rel = nrel
                    state = s2
                    remaining -= 1
                    if not remaining:
                        return Outcome(True, count)
                    phase = ENTER
                    break
                node = knxt[node]
            if phase == ENTER:
                continue
            phase = INFO
            node = inxt[0]

        # phase INFO: calls of unknown outcome, last (a valid history rarely needs them).
        while iinv[node] < limit:
            ok, s2 = step(state, iinp[node], UNKNOWN)
            if ok:
                nib = ib | ibit[node]
                key = (base, rel, s2)
                seen = cache.get(key)
                if seen is None:
                    cache[key] = nib
                elif not _remember(cache, key, seen, nib):
                    node = inxt[node]
                    continue
                count += 1
                if not count & (CHECK_EVERY - 1):
                    why = spent(count)
                    if why:
                        return Outcome("unknown", count, why)
                    yield count
                stack.append((INFO, node, state, limit, base, rel))
                p, n = iprv[node], inxt[node]
                inxt[p] = n
                iprv[n] = p
                ib = nib
                state = s2
                phase = ENTER
                break
            node = inxt[node]
        if phase == ENTER:
            continue

        # Nothing left to try here: backtrack. Past a read-only call, the other
        # candidates of its configuration need no trying (they come after it).
        while True:
            if not stack:
                return _invalid(count, oks, infos, px, kx, best_x, best_stack, best_state, finals)
            phase, node, state, limit, base, rel = stack.pop()
            if len(stack) < low:
                low = len(stack)
            if phase == INFO:
                p, n = iprv[node], inxt[node]
                inxt[p] = node
                iprv[n] = node
                ib ^= ibit[node]
                node = inxt[node]
                break
            if phase == PURE:
                x = px[node]
                p, n = pprv[node], pnxt[node]
                pnxt[p] = node
                pprv[n] = node
            else:
                x = kx[node]
                p, n = kprv[node], knxt[node]
                knxt[p] = node
                kprv[n] = node
            r = x + 1
            p, n = rprv[r], rnxt[r]
            rnxt[p] = r
            rprv[n] = r
            remaining += 1
            if phase == KNOWN:
                node = knxt[node]
                break


ENTER, PURE, KNOWN, INFO = range(4)  # the phases of a configuration's visit
INF = float("inf")


def _links(n: int) -> tuple[list[int], list[int]]:
    """next and previous links of a list of nodes 1..n between head 0 and tail n+1."""
    return list(range(1, n + 3)), list(range(-1, n + 1))


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


def _invalid(count, oks, infos, px, kx, best_x, best_stack, best_state, finals) -> Outcome:
    # Stack items name nodes of the search's own lists; turn them into call ids and
    # attach the state each one left behind.
    def call_of(item):
        phase, node = item[0], item[1]
        if phase == INFO:
            return infos[node - 1]
        return oks[(px if phase == PURE else kx)[node]]

    order = [call_of(item) for item in best_stack]
    states = [item[2] for item in best_stack[1:]] + [best_state]
    configs = []
    for base, rel, ib, state, last in finals:
        done = frozenset(oks[:base] + _members(rel, oks[base:]) + _members(ib, infos))
        configs.append((done, state, call_of(last) if last is not None else None))
    return Outcome(False, count, stuck_at=oks[best_x], path=list(zip(order, states)), finals=configs)


def _members(bits: int, ids: list[int]) -> list[int]:
    """The ids whose bits are set, in O(n) (shifting a big int bit by bit is O(n**2))."""
    return [ids[j] for j, ch in enumerate(reversed(bin(bits)[2:])) if ch == "1"]
