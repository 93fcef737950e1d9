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

Four prunings, each argued where it is used:
- The cache: a configuration seen before cannot lead anywhere new. A configuration is
  also *dominated* by one with the same known calls and state but a subset of the
  unknown-outcome calls applied (those not applied yet may still happen later, or
  never). Each (known calls, state) key keeps its minimal unknown-call subsets; without
  this, k pending indeterminate writes multiply the configurations by 2**k. For the
  same reason an unknown-outcome call that leaves the state as it is is never taken.
- Unknown-outcome calls with equal inputs are interchangeable once invoked, so only the
  earliest not yet taken of each such class is a candidate (a symmetry: 12% timed-out
  ops on 28 processes leave ~120 pending, but only ~30 distinct inputs).
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
what changed since the last copy is copied (`low`: the lowest the stack got since), and
only when the search backtracks: until then the stack only grows, and the stack at the
furthest point is the bottom of the current one (`best_depth` deep).

The same set-up and walk run in C (`_walk.c`, where setup.sh built it), 7-10 times
faster, furthest point included; the Python walk below is the reference it follows and
runs where the C is not built. tests/test_linearizable_walk.py holds the two to the same
outcomes: verdicts, configuration counts, paths and finals.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from itertools import compress, repeat
from operator import and_, gt, is_not, itemgetter, not_

from .models import ANY, SAME, STEP, UNKNOWN, AnyBut

try:
    from . import _walk   # compiled by setup.sh; absent where it could not be built
except ImportError:
    _walk = None

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
        configurations so far, saying why the budget is spent (or None). The memory
        held at the start is read when first asked (at the first pause, CHECK_EVERY
        configurations in, a few hundred kB later): most searches end before, and
        reading /proc for each of a history's thousand keys cost more than their
        searches."""
        memory_cap = None

        def spent(count: int) -> str | None:
            nonlocal memory_cap
            if self.max_entries is not None and count >= self.max_entries:
                return f"memory budget reached: {count} configurations cached (cap {self.max_entries})"
            if self.max_memory is not None:
                if memory_cap is None:
                    memory_cap = _memory_used() + self.max_memory
                elif _memory_used() >= memory_cap:
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


def search(calls, model, budget: Budget = Budget(), compiled: bool = True) -> Outcome:
    """Decide whether `calls` (of one object, in invocation order: a list of calls.Call,
    or the Calls prepare makes in C) linearize under `model` within `budget`
    (compiled=False: never the walk in C)."""
    steps = searching(calls, model, budget, compiled)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def searching(calls, model, budget: Budget = Budget(), compiled: bool = True):
    """The search as a generator: it yields the number of configurations made every
    CHECK_EVERY new ones, so that a driver can interleave keys or stop one, and returns
    the Outcome (see `search`)."""
    # Known calls are numbered in completion order, x = 0, 1, ...: the linearized ones
    # are then all x < base plus the few in the bitset `rel` (bit i: x = base + i), and
    # (base, rel) is small however long the history (Knossos numbers them the same way).
    # Calls are the tuples of calls.Call; their fields are read by position here (a
    # property costs as much as the rest of the set-up).
    if compiled and _walk is not None:
        # The same set-up and walk in C (_walk.c), to the same Outcome.
        walk = _walk.Walk(calls, model.step, model.init(), ANY, SAME, STEP, UNKNOWN, AnyBut, CHECK_EVERY,
                          MAX_FINALS)
        spent = budget.watch()
        while True:
            ran = walk.run()
            if ran.__class__ is int:   # paused, as the loop below yields
                why = spent(ran)
                if why:
                    return Outcome("unknown", ran, why)
                yield ran
            elif ran[0] == "valid":
                return Outcome(True, ran[1])
            else:
                _, count, stuck_at, path, finals = ran
                return Outcome(False, count, stuck_at=stuck_at, path=path, finals=finals)
    rets = list(map(_RET, calls))
    ids = range(len(rets))
    known = list(map(is_not, rets, repeat(None)))   # C-level filters: a genexpr costs 3x
    infos = list(compress(ids, map(not_, known)))
    oks = sorted(compress(ids, known), key=rets.__getitem__)
    n_ok = len(oks)
    if n_ok == 0:
        return Outcome(True)
    step = model.step
    rpos = list(map(rets.__getitem__, oks))
    invs = list(map(_INV, calls))
    pure = list(map(_PURE, calls))

    # The candidates sit in three doubly-linked lists, tried in this order: known
    # read-only calls, known state-changing calls, calls of unknown outcome; each in
    # invocation order between a head and a tail whose invocation is infinitely late, so
    # "while inv < limit" stops at the tail. All three share one node numbering, so one
    # block of code linearizes a candidate whatever its kind. A fourth list holds the
    # pending completions of known calls in completion order (node x + 1 is call x): its
    # first is the limit. Lifting relinks around a node and keeps the node's own links for
    # unlifting (dancing links). The node arrays are built whole, section by section
    # (head, members, tail), with C-level maps and sorts (a Python key function or a
    # per-node append costs as much as a short search).
    # Each node's step is data where the model gives it (Model.transition): the state it
    # needs (or ANY) and the state after it (or SAME); STEP: call model.step.
    x_of_id = dict(zip(oks, range(n_ok)))
    pure_ids = sorted(compress(ids, map(and_, known, pure)), key=invs.__getitem__)
    known_ids = sorted(compress(ids, map(gt, known, pure)), key=invs.__getitem__)   # known, not pure
    pure_xs = list(map(x_of_id.__getitem__, pure_ids))
    known_xs = list(map(x_of_id.__getitem__, known_ids))
    pc = list(map(calls.__getitem__, pure_ids))
    kc = list(map(calls.__getitem__, known_ids))
    ic = list(map(calls.__getitem__, infos))
    n_p, n_k, n_i = len(pc), len(kc), len(ic)
    heads = [0, n_p + 2, n_p + n_k + 4]
    size = n_p + n_k + n_i + 6
    nxt = list(range(1, size + 1))
    prv = list(range(-1, size - 1))

    def column(get, edge, info=None):
        """One field of every node: heads and tails get `edge`, info calls `info` if given."""
        ivals = [info] * n_i if info is not None else list(map(get, ic))
        return [edge, *map(get, pc), edge, edge, *map(get, kc), edge, edge, *ivals, edge]

    inv = column(_INV, -1)
    inv[n_p + 1] = inv[n_p + n_k + 3] = inv[-1] = INF
    info_head = heads[INFO]   # nodes past it are of unknown outcome
    xof = [-1, *pure_xs, -1, -1, *known_xs, *[-1] * (n_i + 3)]
    cid = [-1, *pure_ids, -1, -1, *known_ids, -1, -1, *infos, -1]
    inp = column(_INP, None)
    out = column(_OUT, None, UNKNOWN)
    need = column(_NEED, STEP)
    then = column(_THEN, None)
    ibit = [0] * (n_p + n_k + 5) + [1 << j for j in range(n_i)] + [0]
    # Calls of unknown outcome with equal inputs are interchangeable once invoked (each
    # may take effect at any later point, or never), so of such a class only the earliest
    # not yet linearized is a candidate. same[node]: the bits of the earlier members of
    # its class; the node is a candidate when all of them are set. (Linking only one
    # member per class into the list saves scanning the others, but loses invocation
    # order, which guides the search: measured on bench/linearizability.py's shapes,
    # 2.44 s CPU in all against 1.59 s this way.)
    same = [0] * len(nxt)
    earlier_of: dict = {}
    for node in range(heads[INFO] + 1, len(nxt) - 1):
        try:
            earlier = earlier_of.get(inp[node], 0)
            earlier_of[inp[node]] = earlier | ibit[node]
        except TypeError:   # an unhashable input: its own class
            continue
        same[node] = earlier
    rnxt, rprv = _links(n_ok)

    cache: dict = {}
    count = 0
    spent = budget.watch()

    state = model.init()
    base = rel = ib = 0
    remaining = n_ok
    stack: list[tuple] = []   # (node, state, limit, base, rel, ib) before each linearized call
    best = -1                 # furthest completion position reached
    best_x = -1
    best_stack: list[tuple] = []
    best_state = None
    low = 0
    best_depth = -1           # copy stack[low:best_depth] before the next pop (-1: copied)
    finals: list[tuple] = []

    entering = True
    while True:
        if entering:
            # A new configuration: its candidates are the calls invoked before the
            # first pending completion. First every legal read-only call is taken, in
            # one pass (taking one moves the limit only later, and a state no call
            # changes keeps the others as they were): each was the only branch worth
            # taking (below), so the configurations between are not made one by one.
            # The pass is one stack item, a list of nodes.
            entering = False
            limit = rpos[rnxt[0] - 1]
            node = nxt[heads[PURE]]
            taken = None
            while inv[node] < limit:
                needs = need[node]
                if needs is STEP:
                    ok, s2 = step(state, inp[node], out[node])
                    ok = ok and s2 == state
                else:
                    ok = needs is ANY or needs == state
                if not ok:
                    node = nxt[node]
                    continue
                if taken is None:
                    taken = [node]
                    stack.append((taken, state, limit, base, rel, ib))
                else:
                    taken.append(node)
                p, n = prv[node], nxt[node]
                nxt[p] = n
                prv[n] = p
                r = xof[node] + 1
                p, n2 = rprv[r], rnxt[r]
                rnxt[p] = n2
                rprv[n2] = p
                remaining -= 1
                if not remaining:
                    return Outcome(True, count + 1)
                rel |= 1 << (xof[node] - base)
                if rel & 1:
                    shift = (~rel & (rel + 1)).bit_length() - 1
                    base += shift
                    rel >>= shift
                limit = rpos[rnxt[0] - 1]
                node = n
            covered = False
            if taken is not None:
                key = (base, rel, state)
                seen = cache.get(key)
                if seen is None:
                    cache[key] = ib
                else:
                    covered = not _remember(cache, key, seen, ib)
                if not covered:
                    count += 1
                    if not count & (CHECK_EVERY - 1):
                        why = spent(count)
                        if why:
                            return Outcome("unknown", count, why)
                        yield count
            if not covered:
                if limit > best:
                    best, best_x = limit, rnxt[0] - 1
                    best_depth = len(stack)
                    best_state = state
                    finals = [(base, rel, ib, state, stack[-1][0] if stack else None)]
                elif limit == best and len(finals) < MAX_FINALS:
                    finals.append((base, rel, ib, state, stack[-1][0] if stack else None))
                node = nxt[heads[KNOWN]]

        # Scan the known state-changing calls, then those of unknown outcome, for the
        # next legal, new candidate (no read-only one is legal now).
        while not covered:
            if inv[node] >= limit:
                if node > info_head:
                    break
                node = nxt[info_head]
                continue
            bit = ibit[node]
            if bit and ib & same[node] != same[node]:
                node = nxt[node]   # an interchangeable earlier call is tried instead
                continue
            needs = need[node]
            if needs is STEP:
                ok, s2 = step(state, inp[node], out[node])
                if not ok:
                    node = nxt[node]
                    continue
            elif needs is ANY or needs == state:
                s2 = then[node]
                if s2 is SAME:
                    s2 = state
            else:
                node = nxt[node]
                continue
            if bit:
                if s2 == state:
                    # Changes nothing: dominated by not taking it (a subset, same state).
                    node = nxt[node]
                    continue
                nbase, nrel, nib = base, rel, ib | bit
            else:
                nrel = rel | 1 << (xof[node] - base)
                nbase, nib = base, ib
                if nrel & 1:
                    shift = (~nrel & (nrel + 1)).bit_length() - 1
                    nbase += shift
                    nrel >>= shift
            key = (nbase, nrel, s2)
            seen = cache.get(key)
            if seen is None:
                cache[key] = nib
            elif not _remember(cache, key, seen, nib):
                node = nxt[node]   # covered already
                continue
            count += 1
            if not count & (CHECK_EVERY - 1):
                why = spent(count)
                if why:
                    return Outcome("unknown", count, why)
                yield count
            stack.append((node, state, limit, base, rel, ib))
            p, n = prv[node], nxt[node]
            nxt[p] = n
            prv[n] = p
            if not bit:
                r = xof[node] + 1
                p, n = rprv[r], rnxt[r]
                rnxt[p] = n
                rprv[n] = p
                remaining -= 1
                if not remaining:
                    return Outcome(True, count)
            base, rel, ib, state = nbase, nrel, nib, s2
            entering = True
            break
        if entering:
            continue

        # Nothing left to try here: backtrack. Past read-only calls, the other
        # candidates of their configuration need no trying: when a read-only call is
        # legal, taking it now is never worse than later (it changes no state and relaxes
        # real-time constraints), so its branch was the only one worth taking.
        covered = False
        if best_depth >= 0:
            del best_stack[low:]
            best_stack.extend(stack[low:best_depth])
            low, best_depth = best_depth, -1
        while True:
            if not stack:
                return _invalid(count, oks, infos, cid, best_x, best_stack, best_state, finals)
            node, state, limit, base, rel, ib = stack.pop()
            if len(stack) < low:
                low = len(stack)
            if node.__class__ is list:   # read-only calls, put back in reverse order
                for m in reversed(node):
                    nxt[prv[m]] = m
                    prv[nxt[m]] = m
                    r = xof[m] + 1
                    rnxt[rprv[r]] = r
                    rprv[rnxt[r]] = r
                remaining += len(node)
                continue
            nxt[prv[node]] = node
            prv[nxt[node]] = node
            if not ibit[node]:
                r = xof[node] + 1
                rnxt[rprv[r]] = r
                rprv[rnxt[r]] = r
                remaining += 1
            node = nxt[node]
            break


PURE, KNOWN, INFO = range(3)  # the kinds of candidates, in the order they are tried
DONE = 3                      # no candidate left in any section
INF = float("inf")
# fields of calls.Call, by position
_INP, _OUT, _INV, _RET, _PURE, _NEED, _THEN = map(itemgetter, (0, 1, 2, 3, 10, 11, 12))


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


def _invalid(count, oks, infos, cid, best_x, best_stack, best_state, finals) -> Outcome:
    # Stack items name nodes of the search's own lists: turn them into call ids and
    # attach the state each one left behind (read-only calls, taken together as a list,
    # leave the state they found).
    path = []
    after = [item[1] for item in best_stack[1:]] + [best_state]
    for (node, before, *_), state in zip(best_stack, after):
        if node.__class__ is list:
            path.extend((cid[m], before) for m in node)
        else:
            path.append((cid[node], state))
    configs = []
    for base, rel, ib, state, last in finals:
        done = frozenset(oks[:base] + _members(rel, oks[base:]) + _members(ib, infos))
        if last.__class__ is list:
            last = last[-1]
        configs.append((done, state, cid[last] if last is not None else None))
    return Outcome(False, count, stuck_at=oks[best_x], path=path, finals=configs)


def _members(bits: int, ids: list[int]) -> list[int]:
    """The ids whose bits are set, in O(n) (shifting a big int bit by bit is O(n**2))."""
    return [ids[j] for j, ch in enumerate(reversed(bin(bits)[2:])) if ch == "1"]
