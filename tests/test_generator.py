from harness import generator as gen
from harness.generator import NEMESIS_THREAD, simulate


def fs(ops):
    return [o["f"] for o in ops]


def test_a_dict_is_one_op_and_a_function_repeats():
    assert fs(simulate(gen.clients({"f": "read"}))) == ["read"]
    n = iter(range(3))
    assert fs(simulate(gen.clients(lambda: {"f": "x"} if next(n, None) is not None else None))) == ["x"] * 3


def test_same_seed_same_ops_different_seed_different_ops():
    def g():
        return gen.phases(
            gen.time_limit(5, gen.any_of(
                gen.clients(gen.stagger(0.01, gen.mix(gen.repeat({"f": "read"}),
                                                      lambda ctx: {"f": "write", "value": ctx.rng.randrange(100)}))),
                gen.nemesis(gen.cycle([gen.sleep(1), {"f": "start"}, gen.sleep(1), {"f": "stop"}])))),
            gen.clients(gen.each_thread({"f": "final"})))
    a, b, c = (simulate(g(), concurrency=4, seed=s) for s in (7, 7, 8))
    assert a == b
    assert a != c
    assert len(a) > 100


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
