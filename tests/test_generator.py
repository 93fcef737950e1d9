from harness import generator as gen
from harness.generator import NEMESIS_THREAD, simulate
from harness.schedule import FaultSchedule


def fs(ops):
    return [o["f"] for o in ops]


def test_a_dict_is_one_op_and_a_function_repeats():
    assert fs(simulate(gen.clients({"f": "read"}))) == ["read"]
    until_3ms = simulate(gen.clients(lambda ctx: {"f": "x"} if ctx.time < 3_000_000 else None),
                         concurrency=1)
    assert fs(until_3ms) == ["x"] * 3


def whole_test(concurrency=4):
    """A generator of every kind the runner meets: mixed ops with random values on every
    thread, a paced main phase beside a nemesis schedule, then a final phase."""
    writes = gen.per_thread(lambda t, k, draws: {"f": "write", "value": [t, k, draws.randrange(100)]})
    return gen.phases(
        gen.time_limit(5, gen.any_of(
            gen.clients(gen.stagger(0.01, gen.mix(gen.repeat({"f": "read"}), writes))),
            gen.nemesis(FaultSchedule({"kill": ("kill", "start")}, 1.0)))),
        gen.clients(gen.each_thread({"f": "final"})))


def per_thread_streams(ops):
    streams = {}
    for o in ops:
        streams.setdefault(o["thread"], []).append((o["f"], o.get("value")))
    return streams


def test_same_seed_same_ops_different_seed_different_ops():
    a, b, c = (simulate(whole_test(), concurrency=4, seed=s) for s in (7, 7, 8))
    assert a == b
    assert a != c
    assert len(a) > 100


def test_each_threads_stream_replays_whatever_the_timing():
    streams = per_thread_streams(simulate(gen.clients(gen.limit(400, ops_on_keys())),
                                          concurrency=4, seed=3))
    # The same seed with ops taking 1..9 ms, differing from op to op: the threads take
    # their turns in another order, and each thread still issues the same ops.
    jittery = per_thread_streams(simulate(gen.clients(gen.limit(400, ops_on_keys())),
                                          concurrency=4, seed=3,
                                          latency=lambda o: 1_000_000 * (1 + hash(str(o["value"])) % 9)))
    assert streams.keys() == jittery.keys() == {0, 1, 2, 3}
    for t in streams:
        n = min(len(streams[t]), len(jittery[t]))
        assert n >= 50 and streams[t][:n] == jittery[t][:n]
    assert len({str(s[:50]) for s in streams.values()}) == 4  # and the threads differ


def ops_on_keys():
    def op(thread, k, draws):
        return {"f": draws.choice(("read", "write")), "value": [k // 10, draws.randrange(5)]}
    return gen.per_thread(op)


class AskedAside(gen.Gen):
    """g, but before each real question it is asked in three other contexts whose answers
    are thrown away: a generator whose discarded ops changed anything would drift."""
    __slots__ = ("g",)

    def __init__(self, g):
        self.g = g

    def op(self, ctx):
        for other in (gen.Context(ctx.time + 7, ctx.threads, ctx.free, ctx.process_of, ctx.seed),
                      ctx.only(frozenset(sorted(ctx.free)[:1])),
                      gen.Context(ctx.time * 2 + 1, ctx.threads, ctx.threads, ctx.process_of, ctx.seed)):
            self.g.op(other)
        o, nxt = self.g.op(ctx)
        return o, (AskedAside(nxt) if nxt is not None else None)


def test_an_op_asked_for_and_not_taken_changes_nothing():
    assert simulate(AskedAside(whole_test()), seed=5) == simulate(whole_test(), seed=5)
    assert simulate(AskedAside(gen.clients(gen.limit(300, ops_on_keys()))), seed=5) == \
        simulate(gen.clients(gen.limit(300, ops_on_keys())), seed=5)


def test_asked_twice_in_one_context_a_generator_answers_the_same():
    g = whole_test()
    threads = frozenset({0, 1, 2, 3, NEMESIS_THREAD})
    process_of = {0: 0, 1: 1, 2: 2, 3: 3, NEMESIS_THREAD: "nemesis"}
    for step in range(200):
        ctx = gen.Context(step * 1_000_000, threads, threads, process_of, 11)
        first, nxt = g.op(ctx)
        again, _ = g.op(ctx)
        assert first == again and first is not None
        g = nxt


def test_draws_are_fixed_by_their_key_and_spread_evenly():
    assert [gen.Draws(1, 2, 3).random() for _ in range(3)] == [gen.Draws(1, 2, 3).random()] * 3
    assert gen.Draws(1, 2, 3).random() != gen.Draws(1, 2, 4).random() != gen.Draws(1, 3, 3).random()
    d = gen.Draws(42, 0, 0)
    counts = [0] * 10
    for _ in range(10_000):
        counts[d.randrange(10)] += 1
    assert all(900 < c < 1100 for c in counts)
    assert all(0 <= d.random() < 1 and 3 <= d.randint(3, 5) <= 5 for _ in range(1000))


def test_limit_and_sequence_and_cycle():
    assert fs(simulate(gen.clients(gen.limit(3, gen.repeat({"f": "a"}))))) == ["a"] * 3
    assert fs(simulate(gen.clients([{"f": "a"}, {"f": "b"}]))) == ["a", "b"]
    assert fs(simulate(gen.clients(gen.limit(5, gen.cycle([{"f": "a"}, {"f": "b"}]))))) == ["a", "b", "a", "b", "a"]


def test_stagger_gives_the_rate_across_all_threads():
    ops = simulate(gen.clients(gen.time_limit(10, gen.stagger(0.1, gen.repeat({"f": "r"})))), concurrency=10)
    assert 80 <= len(ops) <= 120  # about 10/s for 10 s, whatever the thread count


def test_delay_is_exact():
    ops = simulate(gen.clients(gen.limit(4, gen.delay(0.5, gen.repeat({"f": "r"})))), concurrency=3)
    gaps = {b["time"] - a["time"] for a, b in zip(ops, ops[1:])}
    assert gaps == {500_000_000}


def test_time_limit_stops_on_time():
    ops = simulate(gen.clients(gen.time_limit(2, gen.delay(0.1, gen.repeat({"f": "r"})))))
    assert max(o["time"] for o in ops) < 2_000_000_000 and len(ops) == 20


def test_phases_wait_for_every_op_of_the_previous_phase():
    ops = simulate(gen.clients(gen.phases(gen.limit(3, gen.repeat({"f": "a"})), {"f": "b"})),
                   concurrency=3, latency=5_000_000)
    b = ops[-1]
    assert b["f"] == "b" and all(a["time"] + 5_000_000 <= b["time"] for a in ops[:-1])


def test_each_thread_gives_every_thread_its_own_copy():
    ops = simulate(gen.clients(gen.each_thread([{"f": "a"}, {"f": "b"}])), concurrency=3)
    assert sorted((o["process"], o["f"]) for o in ops) == sorted((p, f) for p in range(3) for f in "ab")


def test_routing_clients_and_nemesis():
    ops = simulate(gen.any_of(gen.clients(gen.limit(5, gen.repeat({"f": "c"}))),
                              gen.nemesis(gen.limit(2, gen.repeat({"f": "n"})))), concurrency=2)
    assert {o["process"] for o in ops if o["f"] == "n"} == {"nemesis"}
    assert all(isinstance(o["process"], int) for o in ops if o["f"] == "c")
    assert all(o["thread"] == NEMESIS_THREAD for o in ops if o["f"] == "n")


def test_sleep_occupies_a_thread_and_log_is_not_an_op():
    ops = simulate(gen.nemesis([gen.log("hello"), gen.sleep(2), {"f": "after"}]))
    assert fs(ops) == ["after"] and ops[0]["time"] == 2_000_000_000


def test_mix_uses_every_generator():
    ops = simulate(gen.clients(gen.limit(200, gen.mix(gen.repeat({"f": "a"}), gen.repeat({"f": "b"})))))
    assert 60 < fs(ops).count("a") < 140
