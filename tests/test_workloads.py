"""Every workload a spec may name builds, generates ops that replay, and its checkers judge
them right: valid against a correct in-memory store, invalid against one with a planted bug.

A workload is assembled from a spec at run time, so a broken one would otherwise show only
on a real cluster; these catch it in seconds."""
import pytest

from harness import generator as gen
from harness.plugins import make_workload
from harness.spec import resolve_spec
from testkit.memory_store import (BankStore, CounterStore, LockStore, RegisterStore, SetStore,
                                  TxnStore, run)
from workloads import MODULES

STORES = {"register": RegisterStore, "set": SetStore, "list-append": TxnStore,
          "rw-register": TxnStore, "lock": LockStore, "counter": CounterStore, "bank": BankStore}


def _spec(workload):
    return resolve_spec({"workload": workload, "target": "etcd" if workload == "lock" else "raftkv",
                         "concurrency": 4})


def _history(workload, bug: bool, n_ops: int = 300):
    g = gen.clients(gen.limit(n_ops, workload.generator))
    if workload.final_generator is not None:
        g = gen.phases(g, workload.final_generator)
    return run(g, STORES[workload.name](bug=bug), concurrency=4, seed=1)


def _verdicts(workload, history):
    return {name: checker.check(history, {})["valid"] for name, checker in workload.checkers.items()}


@pytest.mark.parametrize("name", MODULES)
def test_each_workload_is_valid_on_a_correct_store(name):
    workload = make_workload(_spec(name))
    history = _history(workload, bug=False)
    assert len([o for o in history if o["type"] == "invoke"]) >= 100
    assert set(_verdicts(workload, history).values()) == {True}


@pytest.mark.parametrize("name", MODULES)
def test_each_workloads_checker_catches_its_planted_bug(name):
    workload = make_workload(_spec(name))
    assert False in _verdicts(workload, _history(workload, bug=True)).values()


class AskedAside(gen.Gen):
    """g, asked in another context before each real question, that answer thrown away."""
    __slots__ = ("g",)

    def __init__(self, g):
        self.g = g

    def op(self, ctx):
        self.g.op(gen.Context(ctx.time + 1, ctx.threads, ctx.threads, ctx.process_of, ctx.seed))
        o, nxt = self.g.op(ctx)
        return o, (AskedAside(nxt) if nxt is not None else None)


@pytest.mark.parametrize("name", MODULES)
def test_each_workloads_ops_do_not_drift_when_asked_for_and_not_taken(name):
    def ops(g):
        return gen.simulate(gen.clients(gen.limit(200, g)), concurrency=4, seed=2)
    g = make_workload(_spec(name)).generator
    assert ops(AskedAside(g)) == ops(g)


def test_a_register_key_outlives_a_fault_at_the_specs_rate():
    from workloads.register import ops_per_thread
    base = {"concurrency": 4, "rate": 200, "nemesis": ["kill"], "nemesis_interval": 5}
    # Three intervals (15 s) at 50 ops/s per thread, far above ops_per_key's 50.
    assert ops_per_thread(base) == 750
    assert ops_per_thread({**base, "workload_opts": {"ops_per_key": 4000}}) == 1000
    assert ops_per_thread({**base, "workload_opts": {"key_life": 1}}) == 50
    # No crash faults, or no rate to count by: ops_per_key alone.
    assert ops_per_thread({**base, "nemesis": []}) == 50
    assert ops_per_thread({**base, "nemesis": ["partition", "pause"]}) == 50
    assert ops_per_thread({**base, "nemesis": ["partition", "disk"]}) == 750
    assert ops_per_thread({**base, "rate": 0}) == 50
    with pytest.raises(ValueError, match="key_life must be"):
        ops_per_thread({**base, "workload_opts": {"key_life": -1}})
