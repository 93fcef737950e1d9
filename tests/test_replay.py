"""One spec run twice on a real raftkv cluster issues the same ops: the k-th op of every
thread (its f and its invocation value) is the same in both runs, and so are the nemesis's
faults; only the timing differs. This is what makes a stored spec.yaml a reproduction."""
import os

import pytest

from core.history import read_jsonl
from harness.run import run_test

pytestmark = [pytest.mark.slow, pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and iptables")]

CONCURRENCY = 6


def thread_streams(run_dir: str) -> dict:
    """Each thread's invocations in order. A thread's processes are p, p + concurrency, ...
    (Jepsen's retirement rule), so its thread is the process modulo the concurrency."""
    streams: dict = {}
    for op in read_jsonl(os.path.join(run_dir, "history.jsonl")):
        if op["type"] != "invoke":
            continue
        thread = "nemesis" if op["process"] == "nemesis" else op["process"] % CONCURRENCY
        streams.setdefault(thread, []).append((op["f"], op["value"]))
    # The heal that ends every run comes when time is up, not from the seeded schedule:
    # a slower run reaches it one scheduled fault earlier.
    nemesis = streams.get("nemesis", [])
    if nemesis and nemesis[-1][0] == "heal":
        nemesis.pop()
    return streams


def test_a_spec_run_twice_gives_every_thread_the_same_ops(tmp_path):
    spec = {"target": "raftkv", "workload": "register", "node_count": 3,
            "concurrency": CONCURRENCY, "rate": 150, "time_limit": 8, "seed": 42,
            "nemesis": ["partition"], "nemesis_interval": 1.5, "op_timeout": 1,
            "workload_opts": {"ops_per_key": 30}, "store": str(tmp_path / "store")}
    first, second = (thread_streams(run_test(dict(spec)).run_dir) for _ in range(2))
    assert first.keys() == second.keys() == {*range(CONCURRENCY), "nemesis"}
    for thread in first:
        a, b = first[thread], second[thread]
        # Time-limited runs end after about as many ops, not exactly as many (a thread on
        # a cut-off node waits out its timeouts for longer in one run than in the other):
        # compare every op both runs issued, the whole of the shorter run.
        n = min(len(a), len(b))
        assert n >= (4 if thread == "nemesis" else 20), (thread, len(a), len(b))
        assert a[:n] == b[:n], f"thread {thread} diverged at op {next(i for i in range(n) if a[i] != b[i])}"
    assert sum(len(s) for s in first.values()) > 300
    keys = {v[0] for s in (first[t] for t in range(CONCURRENCY)) for _, v in s}
    assert len(keys) > 3  # the threads moved on through several keys together
