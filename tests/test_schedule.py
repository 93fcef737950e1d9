"""The nemesis schedule: faults start, are held, stop in reverse, and alternate with rests."""
import pytest

from harness import generator as gen
from harness.schedule import FaultSchedule

FAULTS = {"kill": ("kill", "start"), "pause": ("pause", "resume"), "clock": ("start-clock", "stop-clock")}
STOPS = {stop: kind for kind, (_, stop) in FAULTS.items()}
STARTS = {start: kind for kind, (start, _) in FAULTS.items()}


def nemesis_ops(together, seed, seconds=60):
    g = gen.time_limit(seconds, gen.nemesis(FaultSchedule(FAULTS, 2.0, together)))
    return [o for o in gen.simulate(g, concurrency=1, seed=seed) if o["process"] == "nemesis"]


def replay(ops):
    """The faults active after each op, asserting that every stop ends the latest start."""
    active, most = [], 0
    for o in ops:
        if o["f"] in STARTS:
            assert STARTS[o["f"]] not in active, "a kind started twice at once"
            active.append(STARTS[o["f"]])
        else:
            assert active and STOPS[o["f"]] == active[-1], (o, active)
            active.pop()
        most = max(most, len(active))
    return active, most


@pytest.mark.parametrize("together", [1, 2, 3])
def test_faults_overlap_as_asked_and_stop_in_reverse(together):
    ops = nemesis_ops(together, seed=7)
    _, most = replay(ops)
    assert most == together
    assert len(ops) >= 4 * together


def test_more_together_than_kinds_holds_every_kind():
    _, most = replay(nemesis_ops(5, seed=1))
    assert most == len(FAULTS)


def test_the_seed_fixes_the_schedule_and_kinds_vary():
    a, b = nemesis_ops(2, seed=3), nemesis_ops(2, seed=3)
    assert [o["f"] for o in a] == [o["f"] for o in b]
    pairs = {tuple(o["f"] for o in a[i:i + 2]) for i in range(0, len(a), 4)}
    assert len(pairs) > 1


def test_faults_are_held_for_the_interval_and_rest_between():
    ops = [o for o in nemesis_ops(1, seed=2) if o["type"] == "invoke"]
    for start, stop in zip(ops[0::2], ops[1::2]):
        assert (stop["time"] - start["time"]) / 1e9 == pytest.approx(2.0, abs=0.01)
    for stop, nxt in zip(ops[1::2], ops[2::2]):
        assert (nxt["time"] - stop["time"]) / 1e9 == pytest.approx(2.0, abs=0.01)


def test_faults_held_together_start_in_the_order_the_test_lists_them():
    listed = {"partition": ("start-partition", "stop-partition"), "clock": ("start-clock", "stop-clock")}
    g = gen.time_limit(30, gen.nemesis(FaultSchedule(listed, 2.0, together=2)))
    starts = [o["f"] for o in gen.simulate(g, concurrency=1, seed=5)
              if o["process"] == "nemesis" and o["f"].startswith("start")]
    assert starts[:4] == ["start-partition", "start-clock"] * 2


def test_the_faults_depend_on_the_seed_alone_not_on_what_the_clients_do():
    def kinds(concurrency, latency):
        clients = gen.per_thread(lambda t, k, draws: {"f": "read", "value": draws.randrange(9)})
        g = gen.time_limit(40, gen.any_of(gen.clients(clients),
                                          gen.nemesis(FaultSchedule(FAULTS, 2.0))))
        return [o["f"] for o in gen.simulate(g, concurrency=concurrency, seed=9, latency=latency)
                if o["process"] == "nemesis" and o["f"] in STARTS]
    assert kinds(2, 20_000_000) == kinds(7, 50_000_000)
    assert len(set(kinds(2, 20_000_000))) > 1
