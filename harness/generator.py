"""Generators: pure, seeded descriptions of what the workers and the nemesis do (Jepsen's).

A generator is asked for its next op in a context (the time and which threads are free)
and answers `(op, next_generator)`, `(PENDING, self)` when it has nothing *yet* (no free
thread, or waiting for a phase to drain), or `(None, None)` when it is exhausted. It never
mutates itself: the next state is a new object, so a generator can be restarted (`cycle`)
or copied per thread (`each_thread`) for free, and the same seed yields the same ops.

Plain values lift to generators, as in Jepsen: a dict is one op (emitted once); a function
`f(ctx)` (or `f()`) is called for each op until it returns None; a list or tuple runs its
elements in order. Threads are ints: 0..concurrency-1 for clients and NEMESIS_THREAD for the
nemesis; `clients(g)` and `nemesis(g)` route a generator to one side.

Ops may carry `time` (ns since the test started) to say "not before"; the interpreter
waits until then. Two special op types never reach the history: `sleep` (the thread sleeps
`value` seconds) and `log` (the interpreter logs `value`).
"""
from __future__ import annotations

import random
from typing import Any, Iterable

NEMESIS_THREAD = -1
PENDING: Any = type("Pending", (), {"__repr__": lambda self: "PENDING"})()
NS = 1_000_000_000
_NEMESIS_ONLY = frozenset((NEMESIS_THREAD,))


class Context:
    """What a generator may know: the time, all threads in scope, the free ones, each
    thread's current process, and the test's seeded rng (the only source of randomness).
    Treat it as immutable. (A plain slotted class: it is built for every op.)"""
    __slots__ = ("time", "threads", "free", "process_of", "rng")

    def __init__(self, time: int, threads: frozenset, free: frozenset, process_of: dict,
                 rng: random.Random):
        self.time, self.threads, self.free = time, threads, free
        self.process_of, self.rng = process_of, rng

    def only(self, threads: frozenset) -> "Context":
        """The same moment seen by a subset of the threads."""
        return Context(self.time, self.threads & threads, self.free & threads,
                       self.process_of, self.rng)

    def some_free_thread(self) -> int | None:
        """A free thread chosen by the rng (so load spreads over the nodes). Sets of ints
        iterate in a fixed order, so the choice depends on the seed alone."""
        free = self.free
        if not free:
            return None
        if len(free) == 1:
            for t in free:
                return t
        return tuple(free)[int(self.rng.random() * len(free))]

    def all_free(self) -> bool:
        return self.free == self.threads


class Gen:
    """Base of every generator. Subclasses implement op(); update() sees every invocation
    and completion (Jepsen's update) and by default changes nothing.

    `listens` says whether anything in this generator's tree wants updates: a subclass
    that defines update() listens; the combinators listen when a child does. When nothing
    listens (the usual case) the runner skips updates altogether: they would cost more
    than the ops themselves."""

    listens = False

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "update" in cls.__dict__:
            cls.listens = True

    def op(self, ctx: Context):  # -> (op | PENDING | None, Gen | None)
        raise NotImplementedError

    def update(self, ctx: Context, event: dict) -> "Gen":
        return self


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


def fill(op: dict, ctx: Context):
    """Give an op its thread's process, the invoke type and a time; PENDING without a
    free thread (or when an op bound to a thread finds that thread busy)."""
    if op.get("type") == "log":
        return {"time": ctx.time, **op}
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
    """Calls f(ctx) (or f()) for each op until it returns None."""
    __slots__ = ("f", "takes_ctx")

    def __init__(self, f, takes_ctx: bool | None = None):
        self.f = f
        if takes_ctx is None:
            import inspect
            try:
                takes_ctx = len(inspect.signature(f).parameters) > 0
            except (TypeError, ValueError):
                takes_ctx = False
        self.takes_ctx = takes_ctx

    def op(self, ctx):
        if not ctx.free:
            return PENDING, self
        template = self.f(ctx) if self.takes_ctx else self.f()
        if template is None:
            return None, None
        filled = fill(template, ctx)
        return (PENDING, self) if filled is PENDING else (filled, self)


class Seq(Gen):
    """Each element in turn; an element is done when it is exhausted."""
    __slots__ = ("items", "i", "cur")

    def __init__(self, items: tuple, i: int, cur: Gen | None):
        self.items, self.i, self.cur = items, i, cur
        self.listens = any(g is not None and g.listens for g in items) or bool(cur and cur.listens)

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

    def update(self, ctx, event):
        if self.cur is None:
            return self
        cur = self.cur.update(ctx, event)
        return self if cur is self.cur else Seq(self.items, self.i, cur)


class Repeat(Gen):
    """The same generator's first op, again and again (forever, or n times)."""
    __slots__ = ("g", "n")

    def __init__(self, g: Gen, n: int | None):
        self.g, self.n = g, n
        self.listens = False  # repeats its child's first op; never advances it

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
        self.listens = orig.listens or cur.listens

    def op(self, ctx):
        o, nxt = self.cur.op(ctx)
        if o is None:
            o, nxt = self.orig.op(ctx)
            if o is None:
                return None, None  # an empty generator cycles to nothing
        if o is PENDING:
            return PENDING, Cycle(self.orig, nxt or self.cur)
        return o, Cycle(self.orig, nxt if nxt is not None else self.orig)

    def update(self, ctx, event):
        cur = self.cur.update(ctx, event)
        return self if cur is self.cur else Cycle(self.orig, cur)


class Mix(Gen):
    """Each op from a randomly chosen one of the generators (an exhausted one drops out)."""
    __slots__ = ("gens",)

    def __init__(self, gens: tuple):
        self.gens = gens
        self.listens = any(g.listens for g in gens)

    def op(self, ctx):
        gens = list(self.gens)
        while gens:
            i = ctx.rng.randrange(len(gens))
            o, nxt = gens[i].op(ctx)
            if o is None:
                del gens[i]
                continue
            if o is PENDING:
                return PENDING, Mix(tuple(gens))
            if nxt is None:
                del gens[i]
            else:
                gens[i] = nxt
            return o, (Mix(tuple(gens)) if gens else None)
        return None, None

    def update(self, ctx, event):
        gens = tuple(g.update(ctx, event) for g in self.gens)
        return self if all(a is b for a, b in zip(gens, self.gens)) else Mix(gens)


class Limit(Gen):
    __slots__ = ("n", "g")

    def __init__(self, n: int, g: Gen):
        self.n, self.g = n, g
        self.listens = g.listens

    def op(self, ctx):
        if self.n <= 0:
            return None, None
        o, nxt = self.g.op(ctx)
        if o is None:
            return None, None
        if o is PENDING:
            return PENDING, self
        return o, (Limit(self.n - 1, nxt) if nxt is not None and self.n > 1 else None)

    def update(self, ctx, event):
        g = self.g.update(ctx, event)
        return self if g is self.g else Limit(self.n, g)


class TimeLimit(Gen):
    """Ops until dt seconds after the first op was asked for."""
    __slots__ = ("dt", "g", "deadline")

    def __init__(self, dt: float, g: Gen, deadline: int | None):
        self.dt, self.g, self.deadline = dt, g, deadline
        self.listens = g.listens

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

    def update(self, ctx, event):
        g = self.g.update(ctx, event)
        return self if g is self.g else TimeLimit(self.dt, g, self.deadline)


class Paced(Gen):
    """Spaces ops out in time. random=True is Jepsen's stagger (a uniform gap in [0, 2dt),
    dt on average, across all threads together); random=False is delay (exactly dt)."""
    __slots__ = ("dt", "g", "next_time", "random")

    def __init__(self, dt: float, g: Gen, next_time: int | None, random: bool):
        self.dt, self.g, self.next_time, self.random = dt, g, next_time, random
        self.listens = g.listens

    def op(self, ctx):
        o, nxt = self.g.op(ctx)
        if o is None:
            return None, None
        if o is PENDING:
            return PENDING, self
        at = max(o.get("time", ctx.time), self.next_time if self.next_time is not None else ctx.time)
        if at != o.get("time"):
            o = {**o, "time": at}
        gap = self.dt * (2 * ctx.rng.random() if self.random else 1.0)
        return o, (Paced(self.dt, nxt, at + int(gap * NS), self.random) if nxt is not None else None)

    def update(self, ctx, event):
        g = self.g.update(ctx, event)
        return self if g is self.g else Paced(self.dt, g, self.next_time, self.random)


class Synchronize(Gen):
    """Waits until every thread in scope is free, then behaves as g (phase boundaries)."""
    __slots__ = ("g",)

    def __init__(self, g: Gen):
        self.g = g
        self.listens = g.listens

    def op(self, ctx):
        if not ctx.all_free():
            return PENDING, self
        return self.g.op(ctx)

    def update(self, ctx, event):
        g = self.g.update(ctx, event)
        return self if g is self.g else Synchronize(g)


class OnThreads(Gen):
    """Routes g to a subset of the threads (`None` in the set stands for every client)."""
    __slots__ = ("which", "g")

    def __init__(self, which: str, g: Gen):
        self.which, self.g = which, g
        self.listens = g.listens

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

    def update(self, ctx, event):
        # Updates see the whole context: no built-in generator reads it there, and
        # narrowing it for every event would cost more than the events themselves.
        if (event.get("thread") == NEMESIS_THREAD) != (self.which == "nemesis"):
            return self
        g = self.g.update(ctx, event)
        return self if g is self.g else OnThreads(self.which, g)


class EachThread(Gen):
    """An independent copy of g for every thread in scope."""
    __slots__ = ("orig", "per_thread")

    def __init__(self, orig: Gen, per_thread: dict):
        self.orig, self.per_thread = orig, per_thread
        self.listens = False  # copies are per thread; updates are not routed to them

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


class Any(Gen):
    """Whichever generator has the soonest op (e.g. clients and nemesis side by side)."""
    __slots__ = ("gens",)

    def __init__(self, gens: tuple):
        self.gens = gens
        self.listens = any(g.listens for g in gens)

    def op(self, ctx):
        best_i, best, best_next, live, pending = None, None, None, [], False
        for i, g in enumerate(self.gens):
            o, nxt = g.op(ctx)
            if o is None:
                continue
            live.append(i)
            if o is PENDING:
                pending = True
                continue
            if best is None or o.get("time", 0) < best.get("time", 0):
                best_i, best, best_next = i, o, nxt
        if best is None:
            if not live:
                return None, None
            return PENDING, Any(tuple(self.gens[i] for i in live))
        gens = [self.gens[i] if i != best_i else best_next for i in live]
        return best, Any(tuple(g for g in gens if g is not None))

    def update(self, ctx, event):
        gens = tuple(g.update(ctx, event) for g in self.gens)
        return self if all(a is b for a, b in zip(gens, self.gens)) else Any(gens)


# ------------------------------------------------------------------ the combinators

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
    return Any(tuple(lift(g) for g in _flat(gens)))


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
             latency: int = 1_000_000, with_nemesis: bool = True) -> list[dict]:
    """Run a generator without a cluster: every op takes `latency` ns and succeeds.

    The same seed gives the same ops: this is how a schedule is previewed and how the
    generators' determinism is tested."""
    rng = random.Random(seed)
    threads = set(range(concurrency)) | ({NEMESIS_THREAD} if with_nemesis else set())
    process_of = {t: t for t in range(concurrency)}
    process_of[NEMESIS_THREAD] = "nemesis"
    busy: dict[int, int] = {}  # thread -> time it frees up
    now, out, gen = 0, [], lift(g)
    while gen is not None and len(out) < max_ops:
        ctx = Context(now, frozenset(threads), frozenset(threads - busy.keys()), process_of, rng)
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
        dur = int(o["value"] * NS) if o.get("type") == "sleep" else latency
        busy[o["thread"]] = now + dur
        if o.get("type") != "sleep":
            out.append(o)
    return out
