"""Every workload a spec may name builds, generates ops, and its checkers accept a history.

A workload is assembled from a spec at run time, so a broken one would otherwise show only
on a real cluster; these catch it in a second."""
import pytest

from harness import generator as gen
from harness.spec import WORKLOADS, resolve_spec
from workloads import make_workload


def _spec(workload):
    return resolve_spec({"workload": workload, "target": "etcd" if workload == "lock" else "raftkv"})


@pytest.mark.parametrize("name", WORKLOADS)
def test_each_workload_builds_generates_and_checks(name):
    workload = make_workload(_spec(name))
    ops = [o for o in gen.simulate(gen.clients(gen.limit(40, workload.generator)), concurrency=4)
           if o["type"] == "invoke"]
    assert len(ops) >= 20 and all(o["f"] for o in ops)
    for checker_name, checker in workload.checkers.items():
        result = checker.check([], {})
        assert result["valid"] in (True, False, "unknown"), (checker_name, result)
