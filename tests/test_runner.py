import json
import os
import signal
import subprocess
import sys
import time

from harness import generator as gen
from core.history import HistoryWriter, read_jsonl, validate
from harness.protocols import NoopNemesis
from harness.run import run_test
from harness.runner import Runner
from tests.conftest import ROOT
from tests.fakes import FakeCluster, FakeTarget


def run(tmp_path, g, target, concurrency=3, op_timeout=0.3, grace=0.2, nodes=2):
    w = HistoryWriter(str(tmp_path / "h.jsonl"))
    Runner(generator=g, target=target, nemesis=NoopNemesis(), nodes=FakeCluster(nodes, str(tmp_path)).create(),
           history=w, concurrency=concurrency, op_timeout=op_timeout, grace=grace).run()
    w.close()
    h = read_jsonl(str(tmp_path / "h.jsonl"))
    validate(h)  # at most one open op per process, every completion paired
    return h


def test_every_op_is_recorded_with_times_and_nodes(tmp_path):
    h = run(tmp_path, gen.clients(gen.limit(50, gen.repeat({"f": "write", "value": [1, 2]}))), FakeTarget())
    assert [o["type"] for o in h].count("invoke") == 50 and [o["type"] for o in h].count("ok") == 50
    assert [o["index"] for o in h] == list(range(100))
    assert all(o["time"] >= 0 for o in h)
    assert {o["node"] for o in h if o["type"] == "ok"} == {"n1", "n2"}  # thread t -> node t mod 2


def test_a_hanging_call_becomes_info_and_retires_the_process(tmp_path):
    target = FakeTarget(hang_on={"hang"})
    g = gen.clients(gen.each_thread([{"f": "hang"}, {"f": "write", "value": [1, 1]}]))
    t0 = time.monotonic()
    h = run(tmp_path, g, target, concurrency=2)
    assert time.monotonic() - t0 < 5  # the watchdog, not the hung call, decides
    infos = [o for o in h if o["type"] == "info"]
    assert len(infos) == 2 and all("timeout" in o["error"] for o in infos)
    writes = [o for o in h if o["f"] == "write" and o["type"] == "ok"]
    # the thread goes on as process p + concurrency
    assert sorted(o["process"] for o in writes) == [2, 3]


def test_an_exception_becomes_info_with_the_error(tmp_path):
    h = run(tmp_path, gen.clients([{"f": "boom"}, {"f": "read", "value": [1, None]}]),
            FakeTarget(raise_on={"boom"}), concurrency=1)
    boom = next(o for o in h if o["f"] == "boom" and o["type"] != "invoke")
    assert boom["type"] == "info" and boom["error"] == "ConnectionResetError: fake reset"
    assert boom["exception"] == "ConnectionResetError"
    assert next(o for o in h if o["f"] == "read" and o["type"] == "ok")["process"] == 1


def test_run_test_end_to_end_with_a_fake_target(tmp_path):
    spec = {"store": str(tmp_path / "store"), "workload": "set", "time_limit": 1, "rate": 200,
            "concurrency": 4, "node_count": 3, "recovery_time": 0, "seed": 42}
    out = run_test(spec, cluster_factory=lambda s, d, needs: FakeCluster(s["node_count"], d),
                   target_factory=lambda s, nodes: FakeTarget())
    assert out.valid is True and out.exit_code == 0
    files = set(os.listdir(out.run_dir))
    assert {"spec.yaml", "history.jsonl", "results.json", "tectonic.log"} <= files
    results = json.load(open(os.path.join(out.run_dir, "results.json")))
    assert results["checkers"]["set"]["valid"] is True
    assert results["checkers"]["stats"]["by_f"]["add"]["ok"] > 50
    assert os.path.realpath(tmp_path / "store" / "latest") == os.path.realpath(out.run_dir)
    h = read_jsonl(os.path.join(out.run_dir, "history.jsonl"))
    assert any(o["f"] == "heal" for o in h)  # the final heal is in the history


class SetReturningTarget(FakeTarget):
    """Answers reads with a Python set, which JSON stores as a list."""

    def client(self, node):
        client = super().client(node)
        invoke = client.invoke

        def as_set(op, timeout):
            out = invoke(op, timeout)
            if op["f"] == "read-list" and out["type"] == "ok":
                out["value"] = [out["value"][0], frozenset(out["value"][1])]
            return out
        client.invoke = as_set
        return client


def test_the_live_check_judges_the_stored_history_as_analyze_does(tmp_path):
    """The checkers see the ops as the file holds them: a set-valued read is a list both
    live and in `tectonic analyze` (judged in memory it was no read at all, and the live
    verdict was unknown where analyze said valid)."""
    spec = {"store": str(tmp_path / "store"), "workload": "set", "time_limit": 0.5, "rate": 100,
            "concurrency": 2, "node_count": 2, "recovery_time": 0, "seed": 3}
    out = run_test(spec, cluster_factory=lambda s, d, needs: FakeCluster(s["node_count"], d),
                   target_factory=lambda s, nodes: SetReturningTarget())
    live = json.load(open(os.path.join(out.run_dir, "results.json")))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "analyze", out.run_dir], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    again = json.load(open(os.path.join(out.run_dir, "results.json")))
    assert live["checkers"]["set"]["valid"] is True
    assert live["checkers"] == again["checkers"]


class BrokenTeardownTarget(FakeTarget):
    """Its n1 will not resume and its n2 will not stop: the rest must go down regardless."""

    def resume(self, node):
        super().resume(node)
        if node.name == "n1":
            raise RuntimeError("n1 does not answer")

    def teardown(self, node):
        super().teardown(node)
        if node.name == "n2":
            raise RuntimeError("n2 will not stop")


def test_teardown_takes_every_node_down_even_when_steps_fail(tmp_path):
    spec = {"store": str(tmp_path / "store"), "workload": "set", "time_limit": 0.5, "rate": 50,
            "concurrency": 2, "node_count": 3, "recovery_time": 0, "seed": 1}
    clusters, targets = [], []
    out = run_test(spec,
                   cluster_factory=lambda s, d, needs: clusters.append(FakeCluster(3, d)) or clusters[-1],
                   target_factory=lambda s, nodes: targets.append(BrokenTeardownTarget()) or targets[-1])
    calls = targets[0].calls
    for name in ("n1", "n2", "n3"):
        # Each node in order: resumed, then stopped, even n1 whose resume failed.
        assert calls.index(f"resume {name}") < calls.index(f"teardown {name}")
    assert clusters[0].destroyed
    log = open(os.path.join(out.run_dir, "tectonic.log")).read()
    assert "teardown: resume n1 failed: n1 does not answer" in log
    assert "teardown: teardown n2 failed: n2 will not stop" in log
    assert out.valid is True  # a failed teardown step loses nothing recorded


def test_stats_invalid_when_an_f_never_succeeds(tmp_path):
    spec = {"store": str(tmp_path / "store"), "workload": "set", "time_limit": 0.5, "rate": 100,
            "concurrency": 2, "node_count": 1, "recovery_time": 0, "seed": 1, "op_timeout": 0.2}
    out = run_test(spec, cluster_factory=lambda s, d, needs: FakeCluster(1, d),
                   target_factory=lambda s, nodes: FakeTarget(raise_on={"add"}))
    assert out.results["checkers"]["stats"]["valid"] is False
    assert out.results["checkers"]["stats"]["never_succeeded"] == ["add"]
    assert out.valid is False and out.exit_code == 1


SIGINT_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from harness.run import run_test
from tests.fakes import FakeCluster, FakeTarget
spec = {{"store": {store!r}, "workload": "set", "time_limit": 600, "rate": 100, "concurrency": 3,
        "node_count": 3, "recovery_time": 0, "seed": 5}}
print("started", flush=True)
out = run_test(spec, cluster_factory=lambda s, d, needs: FakeCluster(3, d), target_factory=lambda s, n: FakeTarget())
print("done", out.valid, out.run_dir, flush=True)
"""


def test_ctrl_c_mid_test_still_writes_history_and_results(tmp_path):
    store = str(tmp_path / "store")
    proc = subprocess.Popen([sys.executable, "-c", SIGINT_SCRIPT.format(root=str(ROOT), store=store)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        # Interrupt once the clients have done some work (a loaded machine starts slowly).
        deadline = time.monotonic() + 60
        history = os.path.join(store, "latest", "history.jsonl")
        while time.monotonic() < deadline:
            if os.path.exists(history) and open(history).read().count('"ok"') > 60:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)  # checking and the report take a while on a loaded machine
    finally:
        proc.kill()
    assert out.startswith("done")
    run_dir = out.split()[2]
    h = read_jsonl(os.path.join(run_dir, "history.jsonl"))
    assert sum(1 for o in h if o["type"] == "ok") > 50
    validate(h)
    results = json.load(open(os.path.join(run_dir, "results.json")))
    # Stopped before its final reads: the set checker cannot judge, and says so.
    assert results["checkers"]["set"]["valid"] == "unknown"
    assert results["valid"] == "unknown"
