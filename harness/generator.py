"""Generators: pure, seeded descriptions of what the workers and the nemesis do (Jepsen's).

A generator is a value. Asked for its next op in a context (the time, which threads are
free, the test's seed) it answers `(op, next_generator)`, `(PENDING, self)` when it has
nothing *yet* (no free thread, or waiting for a phase to drain), or `(None, None)` when it
is exhausted. It never mutates itself or anything else: the next state is a new object.
So asking twice in the same context gives the same op, and an op that is asked for but
not taken (the runner re-asking after a completion woke it, `any_of` keeping only the
soonest of its children's ops) changes nothing; a generator can be restarted (`cycle`) or
copied per thread (`each_thread`) for free.

Randomness never comes from a shared rng, whose state would depend on how many ops were
asked for and in which order (so on timing). A thread's op stream (`per_thread`) draws
from `Draws(seed, thread, k)` for its k-th op: the k-th op each thread issues is the same
in every run of the same seed, whatever the timing, and only its invocation time differs.
Combinators that choose (`mix`, `stagger`, the free thread an op goes to) key their draws
by their own position, so they too replay the same choices in the same order.

Plain values lift to generators, as in Jepsen: a dict is one op (emitted once); a function
`f(ctx)` is called for each op until it returns None (it must be a pure function of the
context); a list or tuple runs its elements in order. Threads are ints: 0..concurrency-1
for clients and NEMESIS_THREAD for the nemesis; `clients(g)` and `nemesis(g)` route a
generator to one side.

Ops may carry `time` (ns since the test started) to say "not before"; the interpreter
waits until then. Two special op types never reach the history: `sleep` (the thread sleeps
`value` seconds) and `log` (the interpreter logs `value`).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

NEMESIS_THREAD = -1
PENDING: Any = type("Pending", (), {"__repr__": lambda self: "PENDING"})()
NS = 1_000_000_000
_NEMESIS_ONLY = frozenset((NEMESIS_THREAD,))
_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
# Odd multipliers that spread a key's parts over all 64 bits before the one mix: two keys
# collide only if their parts differ by multiples of them modulo 2**64, which small seeds,
# threads and counts never do.
_SEED_MUL, _STREAM_MUL = 0xD1B54A32D192ED03, 0xABC98388FB8FAC03
_UNIT = 1.0 / (1 << 53)  # 53 random bits to a float in [0, 1)


def _mix64(z: int) -> int:
    """splitmix64's finaliser: every input bit flips about half the output bits."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _draw(seed: int, stream: int, k: int) -> int:
    """One 64-bit random number keyed by (seed, stream, k): a Draws' first, without the
    object (the combinators need one number per op, on the runner's hot path)."""
    return _mix64((seed * _SEED_MUL + stream * _STREAM_MUL + k) & _MASK)


class Draws:
    """The random numbers of one op: a splitmix64 stream keyed by (seed, stream, k).

    The same key always gives the same numbers, so a generator that makes its k-th op from
    `Draws(seed, thread, k)` makes the same op however often it is asked. (random.Random
    would do as well but costs ~20 us to seed, as much as the runner's whole budget per op.)"""
    __slots__ = ("_state",)

    def __init__(self, seed: int, stream: int, k: int):
        self._state = _mix64((seed * _SEED_MUL + stream * _STREAM_MUL + k) & _MASK)

    def _next(self) -> int:
        self._state = (self._state + _GAMMA) & _MASK
        return _mix64(self._state)

    def random(self) -> float:
        """A float in [0, 1)."""
        return (self._next() >> 11) * _UNIT

    def randrange(self, n: int) -> int:
        """An int in [0, n) (the modulo bias of a 64-bit draw is far below anything a test
        could notice for the small n generators use)."""
        return self._next() % n

    def randint(self, a: int, b: int) -> int:
        """An int in [a, b], both ends included."""
        return a + self._next() % (b - a + 1)

    def choice(self, seq):
        return seq[self._next() % len(seq)]


# Streams of draws that are not a thread's own (threads are >= NEMESIS_THREAD = -1).
_THREAD_CHOICE, _MIX_CHOICE, _STAGGER_GAP = -2, -3, -4


class Context:
    """What a generator may know: the time, all threads in scope, the free ones, each
    thread's current process, and the test's seed (the only source of randomness).
    Treat it as immutable. (A plain slotted class: it is built for every op.)"""
    __slots__ = ("time", "threads", "free", "process_of", "seed")

    def __init__(self, time: int, threads: frozenset, free: frozenset, process_of: dict,
                 seed: int):
        self.time, self.threads, self.free = time, threads, free
        self.process_of, self.seed = process_of, seed

    def only(self, threads: frozenset) -> "Context":
        """The same moment seen by a subset of the threads."""
        return Context(self.time, self.threads & threads, self.free & threads,
                       self.process_of, self.seed)

    def some_free_thread(self) -> int | None:
        """A free thread, chosen from the seed, the time and the free set (so load spreads
        over the nodes, and the same context always chooses the same thread). Sets of ints
        iterate in a fixed order."""
        free = self.free
        if not free:
            return None
        if len(free) == 1:
            for t in free:
                return t
        return tuple(free)[_draw(self.seed, _THREAD_CHOICE, self.time * len(free)) % len(free)]

    def all_free(self) -> bool:
        return self.free == self.threads


class Gen:
    """Base of every generator: a value with one method, op(ctx)."""
    __slots__ = ()

    def op(self, ctx: Context):  # -> (op | PENDING | None, Gen | None)
        raise NotImplementedError


def lift(g) -> Gen | None:
    if g is None or isinstance(g, Gen):
        return g
    if isinstance(g, dict):
        return Once(g)
    if isinstance(g, (list, tuple)):
        return Seq(tuple(lift(x) for x in g), 0, None)
    if callable(g):
        return Fn(g)
    raise TypeError(f"not a generator: {g!r}")


def fill(op: dict, ctx: Context, thread: int | None = None):
    """Give an op its thread's process, the invoke type and a time; PENDING without a
    free thread (or when the op's thread, given or bound in the op, is busy)."""
    if op.get("type") == "log":
        return {"time": ctx.time, **op}
    if thread is None:
        thread = op.get("thread")
    if thread is None:
        thread = ctx.some_free_thread()
        if thread is None:
            return PENDING
    elif thread not in ctx.free:
        return PENDING
    out = {"type": "invoke", "time": ctx.time, **op}
    out["thread"] = thread
    out["process"] = ctx.process_of[thread]
    return out


class Once(Gen):
    __slots__ = ("template",)

    def __init__(self, template: dict):
        self.template = template

    def op(self, ctx):
        filled = fill(self.template, ctx)
        return (PENDING, self) if filled is PENDING else (filled, None)


class Fn(Gen):
    """Calls f(ctx) for each op until it returns None. f must be a pure function of the
    context (no state of its own, no rng): what it returns for a context is the op."""
    __slots__ = ("f",)

    def __init__(self, f: Callable[[Context], dict | None]):
        self.f = f

    def op(self, ctx):
        if not ctx.free:
            return PENDING, self
        template = self.f(ctx)
        if template is None:
            return None, None
        filled = fill(template, ctx)
        return (PENDING, self) if filled is PENDING else (filled, self)


class PerThread(Gen):
    """Every thread's own op stream: the k-th op of thread t is `make(t, k, draws)`, with
    `draws = Draws(seed, t, k)`; `make` returning None ends the generator. The counts are
    this generator's state, so thread t's k-th op is the same in every run of the seed,
    whichever threads happen to be free when."""
    __slots__ = ("make", "counts")

    def __init__(self, make: Callable[[int, int, Draws], dict | None], counts: dict):
        self.make, self.counts = make, counts

    def op(self, ctx):
        thread = ctx.some_free_thread()
        if thread is None:
            return PENDING, self
        k = self.counts.get(thread, 0)
        template = self.make(thread, k, Draws(ctx.seed, thread, k))
        if template is None:
            return None, None
        counts = self.counts.copy()
        counts[thread] = k + 1
        return fill(template, ctx, thread), PerThread(self.make, counts)


class Seq(Gen):
    """Each element in turn; an element is done when it is exhausted."""
    __slots__ = ("items", "i", "cur")

    def __init__(self, items: tuple, i: int, cur: Gen | None):
        self.items, self.i, self.cur = items, i, cur

    def op(self, ctx):
        i, cur = self.i, self.cur
        while i < len(self.items):
            if cur is None:
                cur = lift(self.items[i])
            o, nxt = cur.op(ctx)
            if o is None:
                i, cur = i + 1, None
                continue
            if o is PENDING:
                return PENDING, Seq(self.items, i, cur)
            return o, Seq(self.items, i, nxt) if nxt is not None else Seq(self.items, i + 1, None)
        return None, None


class Repeat(Gen):
    """The same generator's first op, again and again (forever, or n times)."""
    __slots__ = ("g", "n")

    def __init__(self, g: Gen, n: int | None):
        self.g, self.n = g, n

    def op(self, ctx):
        if self.n is not None and self.n <= 0:
            return None, None
        o, _ = self.g.op(ctx)
        if o is None or o is PENDING:
            return o, (self if o is PENDING else None)
        return o, Repeat(self.g, None if self.n is None else self.n - 1)


class Cycle(Gen):
    """Run a generator to exhaustion, then start it again from the beginning."""
    __slots__ = ("orig", "cur")

    def __init__(self, orig: Gen, cur: Gen):
        self.orig, self.cur = orig, cur

    def op(self, ctx):
        o, nxt = self.cur.op(ctx)
        if o is None:
            o, nxt = self.orig.op(ctx)
            if o is None:
                return None, None  # an empty generator cycles to nothing
        if o is PENDING:
            return PENDING, Cycle(self.orig, nxt or self.cur)
        return o, Cycle(self.orig, nxt if nxt is not None else self.orig)


class Mix(Gen):
    """Each op from a randomly chosen one of the generators (an exhausted one drops out).
    The n-th choice draws from (seed, n): the sequence of choices replays."""
    __slots__ = ("gens", "n")

    def __init__(self, gens: tuple, n: int = 0):
        self.gens, self.n = gens, n

    def op(self, ctx):
        gens = list(self.gens)
        draw = _draw(ctx.seed, _MIX_CHOICE, self.n)
        while gens:
            i = draw % len(gens)
            draw //= len(gens)  # the next choice, if this one is exhausted, from other bits
            o, nxt = gens[i].op(ctx)
            if o is None:
                del gens[i]
                continue
            if o is PENDING:
                return PENDING, Mix(tuple(gens), self.n)
            if nxt is None:
                del gens[i]
            else:
                gens[i] = nxt
            return o, (Mix(tuple(gens), self.n + 1) if gens else None)
        return None, None


class Limit(Gen):
    __slots__ = ("n", "g")

    def __init__(self, n: int, g: Gen):
        self.n, self.g = n, g

    def op(self, ctx):
        if self.n <= 0:
            return None, None
        o, nxt = self.g.op(ctx)
        if o is None:
            return None, None
        if o is PENDING:
            return PENDING, self
        return o, (Limit(self.n - 1, nxt) if nxt is not None and self.n > 1 else None)


class TimeLimit(Gen):
    """Ops until dt seconds after the first op was asked for."""
    __slots__ = ("dt", "g", "deadline")

    def __init__(self, dt: float, g: Gen, deadline: int | None):
        self.dt, self.g, self.deadline = dt, g, deadline

    def op(self, ctx):
        deadline = self.deadline if self.deadline is not None else ctx.time + int(self.dt * NS)
        if ctx.time >= deadline:
            return None, None
        o, nxt = self.g.op(ctx)
        if o is None:
            return None, None
        if o is PENDING:
            return PENDING, TimeLimit(self.dt, self.g, deadline)
        if o.get("time", 0) >= deadline:
            return None, None
        return o, (TimeLimit(self.dt, nxt, deadline) if nxt is not None else None)


class Paced(Gen):
    """Spaces ops out in time. random=True is Jepsen's stagger (a uniform gap in [0, 2dt),
    dt on average, across all threads together; the n-th gap draws from (seed, n));
    random=False is delay (exactly dt)."""
    __slots__ = ("dt", "g", "next_time", "random", "n")

    def __init__(self, dt: float, g: Gen, next_time: int | None, random: bool, n: int = 0):
        self.dt, self.g, self.next_time, self.random, self.n = dt, g, next_time, random, n

    def op(self, ctx):
        o, nxt = self.g.op(ctx)
        if o is None:
            return None, None
        if o is PENDING:
            return PENDING, self
        at = max(o.get("time", ctx.time), self.next_time if self.next_time is not None else ctx.time)
        if at != o.get("time"):
            o = {**o, "time": at}
        if nxt is None:
            return o, None
        gap = self.dt * (2 * (_draw(ctx.seed, _STAGGER_GAP, self.n) >> 11) * _UNIT if self.random else 1.0)
        return o, Paced(self.dt, nxt, at + int(gap * NS), self.random, self.n + 1)


class Synchronize(Gen):
    """Waits until every thread in scope is free, then behaves as g (phase boundaries)."""
    __slots__ = ("g",)

    def __init__(self, g: Gen):
        self.g = g

    def op(self, ctx):
        if not ctx.all_free():
            return PENDING, self
        return self.g.op(ctx)


class OnThreads(Gen):
    """Routes g to one side: the nemesis thread, or every client thread."""
    __slots__ = ("which", "g")

    def __init__(self, which: str, g: Gen):
        self.which, self.g = which, g

    def _view(self, ctx: Context) -> Context:
        if self.which == "nemesis":
            keep = _NEMESIS_ONLY
        else:
            keep = ctx.threads - _NEMESIS_ONLY
        return ctx.only(keep)

    def op(self, ctx):
        o, nxt = self.g.op(self._view(ctx))
        if o is None or nxt is None:
            return o, None
        return o, (self if nxt is self.g else OnThreads(self.which, nxt))


class EachThread(Gen):
    """An independent copy of g for every thread in scope."""
    __slots__ = ("orig", "per_thread")

    def __init__(self, orig: Gen, per_thread: dict):
        self.orig, self.per_thread = orig, per_thread

    def op(self, ctx):
        best, best_t, best_next, any_pending = None, None, None, False
        for t in sorted(ctx.threads):
            g = self.per_thread.get(t, self.orig)
            if g is None:
                continue
            if t not in ctx.free:
                any_pending = True
                continue
            o, nxt = g.op(ctx.only(frozenset((t,))))
            if o is None:
                d = dict(self.per_thread)
                d[t] = None
                return EachThread(self.orig, d).op(ctx)
            if o is PENDING:
                any_pending = True
                continue
            if best is None or o.get("time", 0) < best.get("time", 0):
                best, best_t, best_next = o, t, nxt
        if best is None:
            return (PENDING, self) if any_pending else (None, None)
        d = dict(self.per_thread)
        d[best_t] = best_next
        return best, EachThread(self.orig, d)


class AnyOf(Gen):
    """Whichever generator has the soonest op (e.g. clients and nemesis side by side). The
    other children's ops are dropped unseen; they are values, so that changes nothing."""
    __slots__ = ("gens",)

    def __init__(self, gens: tuple):
        self.gens = gens

    def op(self, ctx):
        best_i, best, best_next, live = None, None, None, []
        for i, g in enumerate(self.gens):
            o, nxt = g.op(ctx)
            if o is None:
                continue
            live.append(i)
            if o is PENDING:
                continue
            if best is None or o.get("time", 0) < best.get("time", 0):
                best_i, best, best_next = i, o, nxt
        if best is None:
            if not live:
                return None, None
            return PENDING, AnyOf(tuple(self.gens[i] for i in live))
        gens = [self.gens[i] if i != best_i else best_next for i in live]
        return best, AnyOf(tuple(g for g in gens if g is not None))


# ------------------------------------------------------------------ the combinators

def per_thread(make: Callable[[int, int, Draws], dict | None]) -> Gen:
    """Each thread's op stream from `make(thread, k, draws)` (see PerThread)."""
    return PerThread(make, {})


def mix(*gens) -> Gen:
    return Mix(tuple(lift(g) for g in _flat(gens)))


def stagger(dt: float, g) -> Gen:
    """About one op every dt seconds across all threads (uniform gaps in [0, 2dt))."""
    return Paced(dt, lift(g), None, True)


def rate(ops_per_second: float, g) -> Gen:
    """stagger expressed as a total rate; 0 or None means as fast as possible."""
    return stagger(1.0 / ops_per_second, g) if ops_per_second else lift(g)


def delay(dt: float, g) -> Gen:
    """Exactly dt seconds between ops."""
    return Paced(dt, lift(g), None, False)


def limit(n: int, g) -> Gen:
    return Limit(n, lift(g))


def time_limit(dt: float, g) -> Gen:
    return TimeLimit(dt, lift(g), None)


def phases(*gens) -> Gen:
    """Each generator in turn, each starting only once every op of the previous completed."""
    return Seq(tuple(Synchronize(lift(g)) for g in _flat(gens)), 0, None)


def then(*gens) -> Gen:
    """Each generator in turn, without waiting for the previous one's ops to complete."""
    return Seq(tuple(lift(g) for g in _flat(gens)), 0, None)


def repeat(g, n: int | None = None) -> Gen:
    return Repeat(lift(g), n)


def cycle(g) -> Gen:
    g = lift(g)
    return Cycle(g, g)


def each_thread(g) -> Gen:
    return EachThread(lift(g), {})


def clients(g) -> Gen:
    return OnThreads("clients", lift(g))


def nemesis(g) -> Gen:
    return OnThreads("nemesis", lift(g))


def any_of(*gens) -> Gen:
    return AnyOf(tuple(lift(g) for g in _flat(gens)))


def sleep(dt: float) -> dict:
    """An op that keeps one thread busy for dt seconds (nothing is recorded)."""
    return {"type": "sleep", "value": dt}


def log(message: str) -> dict:
    """An op the interpreter writes to the test's log (nothing is recorded)."""
    return {"type": "log", "value": message}


def _flat(gens: Iterable) -> list:
    gens = list(gens)
    if len(gens) == 1 and isinstance(gens[0], list):
        return gens[0]
    return gens


# ------------------------------------------------------------------ simulation

def simulate(g, *, concurrency: int = 5, seed: int = 0, max_ops: int = 100_000,
             latency: int | Callable[[dict], int] = 1_000_000,
             with_nemesis: bool = True) -> list[dict]:
    """Run a generator without a cluster: every op succeeds after `latency` ns (a number,
    or a function of the op, to vary the timing).

    The same seed gives the same ops: this is how a schedule is previewed and how the
    generators' determinism is tested."""
    threads = set(range(concurrency)) | ({NEMESIS_THREAD} if with_nemesis else set())
    process_of = {t: t for t in range(concurrency)}
    process_of[NEMESIS_THREAD] = "nemesis"
    busy: dict[int, int] = {}  # thread -> time it frees up
    now, out, gen = 0, [], lift(g)
    while gen is not None and len(out) < max_ops:
        ctx = Context(now, frozenset(threads), frozenset(threads - busy.keys()), process_of, seed)
        o, nxt = gen.op(ctx)
        if o is None:
            break
        if o is PENDING:
            if not busy:
                break  # nothing can ever change: a generator waiting on nothing
            t = min(busy, key=busy.get)
            now = max(now, busy.pop(t))
            continue
        if o.get("time", now) > now and busy and min(busy.values()) < o["time"]:
            t = min(busy, key=busy.get)
            now = busy.pop(t)
            continue
        now = max(now, o.get("time", now))
        gen = nxt
        if o.get("type") == "log":
            continue
        if o.get("type") == "sleep":
            dur = int(o["value"] * NS)
        else:
            dur = latency(o) if callable(latency) else latency
        busy[o["thread"]] = now + dur
        if o.get("type") != "sleep":
            out.append(o)
    return out
