"""Campaigns: expectations, JUnit XML, exit codes, resuming, malformed files.

The runs are played by a fake runner (run_campaign's `runner`), which decides verdicts
from the spec the way the real targets would: a run with a bug is invalid.
"""
from __future__ import annotations

import itertools
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest

from harness.campaign import CampaignError, load_campaign, run_campaign
from harness.spec import SpecError
from tests.conftest import ROOT, needs_root

RUN_NUMBERS = itertools.count(1)

SMALL = """
name: small
base: {target: raftkv, time_limit: 5, seed: 10}
matrix:
  workload: [register, list-append]
entries:
  - {workload: register, nemesis: [partition], bugs: [stale-reads], expect: invalid}
"""


class FakeRunner:
    """Stores a minimal run directory per call; a run with bugs is invalid."""

    def __init__(self, store: pathlib.Path, interrupt_at: int | None = None, crash_at: int | None = None,
                 verdict=None):
        self.store, self.calls = store, []
        self.interrupt_at, self.crash_at, self.verdict = interrupt_at, crash_at, verdict

    def __call__(self, spec: dict):
        self.calls.append(spec)
        n = len(self.calls)
        if n == self.interrupt_at:
            raise KeyboardInterrupt
        if n == self.crash_at:
            raise RuntimeError("node n2 did not start")
        valid = self.verdict if self.verdict is not None else not spec.get("bugs")
        run_dir = self.store / spec["name"] / f"20240101T{next(RUN_NUMBERS):06d}.000"
        run_dir.mkdir(parents=True)
        checkers = {"linearizable": {"valid": valid, "failures": {} if valid else {"k1": {}}}}
        results = {"valid": valid, "checkers": checkers, "seed": spec.get("seed")}
        if valid is False and spec.get("seed") is not None:  # found after seed/2 seconds
            results["detection"] = {"index": 7, "time": 0, "seconds": spec["seed"] / 2, "checker": "linearizable"}
        (run_dir / "results.json").write_text(json.dumps(results))
        return SimpleNamespace(valid=valid, run_dir=str(run_dir), results=results,
                               exit_code=0 if valid else 1)


def write(tmp_path: pathlib.Path, text: str, name: str = "small.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def junit(store: pathlib.Path, name: str = "small") -> ET.Element:
    return ET.parse(store / "campaigns" / name / "junit.xml").getroot()


def test_campaign_as_expected_exits_0_with_one_testcase_per_run(tmp_path, capsys):
    store = tmp_path / "store"
    runner = FakeRunner(store)
    code = run_campaign(write(tmp_path, SMALL), store=str(store), runner=runner)
    assert code == 0
    assert [(c["workload"], c.get("bugs"), c["seed"], c["store"]) for c in runner.calls] == [
        ("register", None, 10, str(store)), ("list-append", None, 10, str(store)),
        ("register", ["stale-reads"], 10, str(store))]
    assert runner.calls[2]["name"] == "small-raftkv-register-partition-stale-reads"
    root = junit(store)
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "0", "0")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "raftkv register nemesis=none seed=10", "raftkv list-append nemesis=none seed=10",
        "raftkv register nemesis=partition bugs=stale-reads seed=10"]
    assert cases[2].find("failure") is None
    assert "verdict: invalid" in cases[2].find("system-out").text
    html = (store / "campaigns" / "small" / "campaign.html").read_text()
    assert "3 of 3 entries as expected" in html and "nonlinearizable" in html
    assert re.search(r'href="../../small-raftkv-register-partition-stale-reads/20240101T\d{6}.000/report.html"', html)
    out = capsys.readouterr().out
    assert "3 of 3 entries as expected" in out and "campaign small" in out


def test_a_verdict_other_than_expected_fails_the_campaign_and_its_testcase(tmp_path):
    store = tmp_path / "store"
    code = run_campaign(write(tmp_path, SMALL), store=str(store), runner=FakeRunner(store, verdict=True))
    assert code == 1
    failures = junit(store).findall(".//failure")
    assert len(failures) == 1
    assert failures[0].get("message") == "expected invalid, got valid"
    assert "repeat: tectonic test --spec" in failures[0].text
    assert "NOT as expected" in (store / "campaigns" / "small" / "campaign.html").read_text()


def test_an_interrupted_campaign_resumes_where_it_stopped(tmp_path):
    store, path = tmp_path / "store", write(tmp_path, SMALL)
    with pytest.raises(KeyboardInterrupt):
        run_campaign(path, store=str(store), runner=FakeRunner(store, interrupt_at=2))
    state = json.loads((store / "campaigns" / "small" / "state.json").read_text())
    assert len(state["finished"]) == 1 and not state["complete"]
    assert len(junit(store).findall(".//skipped")) == 2  # the outputs show what is still to do

    resumed = FakeRunner(store)
    assert run_campaign(path, store=str(store), runner=resumed) == 0
    assert [c["workload"] for c in resumed.calls] == ["list-append", "register"]
    assert junit(store).find("testsuite").get("tests") == "3"
    assert not junit(store).findall(".//skipped")

    again = FakeRunner(store)  # a finished campaign run again starts over
    assert run_campaign(path, store=str(store), runner=again) == 0
    assert len(again.calls) == 3


def test_a_crashed_run_is_an_error_and_is_tried_again_on_resume(tmp_path):
    store, path = tmp_path / "store", write(tmp_path, SMALL)
    assert run_campaign(path, store=str(store), runner=FakeRunner(store, crash_at=1)) == 1
    error = junit(store).find(".//error")
    assert error is not None and error.get("message") == "RuntimeError: node n2 did not start"
    retry = FakeRunner(store)
    assert run_campaign(path, store=str(store), runner=retry) == 0
    assert [c["workload"] for c in retry.calls] == ["register"] and not retry.calls[0].get("bugs")


def test_a_run_stopped_by_a_signal_is_not_recorded_and_the_campaign_exits_2(tmp_path, monkeypatch):
    import harness.run

    def stopped_run_test(spec, *, progress=None, stop=None, **_):
        stop.set()  # what run_test's signal handler does on Ctrl-C
        return SimpleNamespace(valid="unknown", run_dir=str(tmp_path), results={})

    monkeypatch.setattr(harness.run, "run_test", stopped_run_test)
    store = tmp_path / "store"
    assert run_campaign(write(tmp_path, SMALL), store=str(store)) == 2
    state = json.loads((store / "campaigns" / "small" / "state.json").read_text())
    assert state["finished"] == {}


def test_expectation_rules_repeat_and_seeds(tmp_path):
    path = write(tmp_path, """
        base: {seed: 5, nemesis: partition}
        repeat: 2
        expectations:
          - {when: {concurrency: 2}, expect: invalid}
          - {when: {target: etcd}, expect: unknown}
        matrix:
          target: [raftkv, etcd]
          concurrency: [1, 2]
        entries:
          - {target: raftkv, workload: set, concurrency: 2, expect: valid, repeat: 1}
        """, "rules.yaml")
    campaign = load_campaign(path, store=str(tmp_path / "s"))
    got = [(r.spec["target"], r.spec["concurrency"], r.spec["seed"], r.expect) for r in campaign.runs]
    assert got == [("raftkv", 1, 5, "valid"), ("raftkv", 1, 6, "valid"),
                   ("raftkv", 2, 5, "invalid"), ("raftkv", 2, 6, "invalid"),
                   ("etcd", 1, 5, "unknown"), ("etcd", 1, 6, "unknown"),
                   ("etcd", 2, 5, "invalid"), ("etcd", 2, 6, "invalid"),
                   ("raftkv", 2, 5, "valid")]
    assert campaign.name == "rules" and campaign.dir == str(tmp_path / "s" / "campaigns" / "rules")
    assert len({r.key for r in campaign.runs}) == len(campaign.runs)


def test_the_same_run_listed_twice_runs_twice(tmp_path):
    store = tmp_path / "store"
    runner = FakeRunner(store)
    path = write(tmp_path, "entries: [{seed: 1}, {seed: 1}]", "twice.yaml")
    assert run_campaign(path, store=str(store), runner=runner) == 0
    assert len(runner.calls) == 2
    names = [c.get("name") for c in junit(store, "twice").iter("testcase")]
    assert names == ["raftkv register nemesis=none seed=1", "raftkv register nemesis=none seed=1#2"]


REPEATED = """
name: repeated
base: {target: raftkv, workload: register, nemesis: [partition], seed: 1}
entries:
  - {bugs: [stale-reads], repeat: 5, expect: invalid, at_least: 0.6}
  - {bugs: [lease-reads], repeat: 5, expect: invalid}
  - {repeat: 2}
"""


class SomeSeedsFind(FakeRunner):
    """A bug shows only under odd seeds (3 of the 5 seeds 1..5)."""

    def __call__(self, spec):
        return super().__call__({**spec, "bugs": spec.get("bugs") if spec["seed"] % 2 else []}) \
            if spec.get("bugs") else super().__call__(spec)


def test_repeat_and_pass_policy_decide_each_entry_with_bug_finding_figures(tmp_path):
    store = tmp_path / "store"
    runner = SomeSeedsFind(store)
    assert run_campaign(write(tmp_path, REPEATED, "repeated.yaml"), store=str(store), runner=runner) == 1
    assert [c["seed"] for c in runner.calls] == [1, 2, 3, 4, 5] * 2 + [1, 2]
    suite = junit(store, "repeated").find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    found, missed, clean = suite.findall("testcase")
    assert found.get("name") == "raftkv register nemesis=partition bugs=stale-reads seeds=1..5"
    assert found.find("failure") is None  # 3 of 5 >= 60%
    out = found.find("system-out").text
    assert "found in 3 of 5 runs (seeds 1, 3, 5)" in out
    assert "time to detection: median 1.5 s, max 2.5 s" in out   # seeds 1, 3, 5 -> 0.5, 1.5, 2.5
    failure = missed.find("failure")  # `all` by default: 3 of 5 is not enough
    assert failure.get("message") == "expected invalid in all 5 runs, got valid 2, invalid 3"
    assert failure.text.index("run seed 2: valid") < failure.text.index("run seed 1: invalid")
    assert "repeat: tectonic test --spec" in failure.text
    assert clean.find("failure") is None
    html = (store / "campaigns" / "repeated" / "campaign.html").read_text()
    assert "2 of 3 entries as expected, 1 not" in html
    assert 'src="data:image/png;base64,' in html and (store / "campaigns" / "repeated" / "ttd.png").exists()
    assert html.count('title="invalid, seed') == 6 and html.count('title="valid, seed') == 6


def test_an_interrupted_entry_is_undecided_until_its_runs_are_done(tmp_path):
    store, path = tmp_path / "store", write(tmp_path, REPEATED, "repeated.yaml")
    with pytest.raises(KeyboardInterrupt):
        run_campaign(path, store=str(store), runner=SomeSeedsFind(store, interrupt_at=3))
    cases = junit(store, "repeated").findall(".//testcase")
    assert [c.find("skipped") is not None for c in cases] == [True, True, True]
    assert run_campaign(path, store=str(store), runner=SomeSeedsFind(store)) == 1


@pytest.mark.parametrize("text, message", [
    ("at_least: 0\nentries: [{}]", "field 'at_least' must be 'all' or a fraction"),
    ("entries: [{at_least: 1.5}]", "field 'entries[0].at_least' must be 'all' or a fraction"),
    ("entries: [{at_least: most}]", "field 'entries[0].at_least' must be 'all' or a fraction"),
    ("matrix: {workload: register}", "field 'matrix.workload' must be a non-empty list"),
    ("matrix: {workloads: [register]}", "field 'matrix.workloads': use the spec field name 'workload'"),
    ("entries: [{workload: register, expect: broken}]", "field 'entries[0].expect' must be one of valid, invalid, unknown"),
    ("entries: [{workload: registr}]", "entries[0]: field 'workload': unknown workload 'registr'"),
    ("entries: [{nemesis: [flood]}]", "entries[0]: field 'nemesis': unknown fault 'flood'"),
    ("base: {time_limit: -1}\nentries: [{}]", "field 'time_limit' must be at least"),
    ("repeat: 0\nentries: [{}]", "field 'repeat' must be a whole number"),
    ("expectations: [{when: {colour: red}, expect: valid}]\nentries: [{}]", "field 'expectations[0].when.colour' is not a spec field"),
    ("entries: [{store: elsewhere}]", "entries[0]: field 'store' belongs in 'base'"),
    ("nemeses: [kill]", "unknown field 'nemeses'"),
    ("name: small", "no runs: give a 'matrix' or 'entries'"),
    ("entries: [{workload: register]", "small.yaml:1: not valid YAML"),
    ("- just a list", "a campaign is a mapping"),
])
def test_malformed_campaign_files_name_the_file_and_field(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(CampaignError if "entries[0]: field" not in message and "time_limit" not in message
                       else SpecError) as e:
        run_campaign(path, store=str(tmp_path / "store"), runner=FakeRunner(tmp_path))
    assert str(e.value).startswith(path) and message in str(e.value)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "store").exists()  # nothing ran, nothing was written


@pytest.mark.parametrize("flags, message", [
    (["--parallel", "0"], "Invalid value for '--parallel'"),
    (["--dask", "scheduler:8786"], "--dask must look like tcp://HOST:PORT, got 'scheduler:8786'"),
    (["--dask", "tcp://127.0.0.1:8786", "--parallel", "2"], "give --parallel or --dask, not both"),
    (["--shared-store"], "--shared-store is for --dask"),
    (["--dask", "tcp://127.0.0.1:8786", "--shared-store", "--store", "rel"], "needs an absolute --store"),
])
def test_bad_executor_flags_are_one_line_and_254(tmp_path, capsys, flags, message):
    from harness.cli import main
    with pytest.raises(SystemExit) as e:
        main(["campaign", write(tmp_path, SMALL), *flags])
    err = capsys.readouterr().err
    assert e.value.code == 254 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "store").exists()


@pytest.mark.slow
def test_an_unreachable_dask_scheduler_is_one_line_and_254(tmp_path):
    # In a process of its own: Dask's client leaves an event-loop thread behind, and
    # other tests' checkers refuse to fork beside threads.
    pytest.importorskip("distributed")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "campaign", write(tmp_path, SMALL),
                           "--store", str(tmp_path / "store"), "--dask", "tcp://127.0.0.1:9"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 254 and len(err) == 1, proc.stderr
    assert err[0].startswith("tectonic: cannot reach the Dask scheduler at tcp://127.0.0.1:9")


def test_missing_campaign_file(tmp_path):
    with pytest.raises(CampaignError, match="no such campaign file"):
        load_campaign(str(tmp_path / "nope.yaml"))


@pytest.mark.parametrize("name", ["smoke.yaml", "raftkv-bugs.yaml"])
def test_shipped_campaigns_are_valid(name):
    root = pathlib.Path(__file__).resolve().parent.parent
    campaign = load_campaign(str(root / "campaigns" / name), store="store")
    assert any(r.expect == "invalid" for r in campaign.runs)
    assert any(r.expect == "valid" for r in campaign.runs)
    if name == "raftkv-bugs.yaml":
        bugs = {b for r in campaign.runs for b in r.spec.get("bugs") or []}
        assert bugs == {"stale-reads", "no-fsync", "lease-reads", "early-ack", "no-term-check"}
        assert all((r.expect == "invalid") == bool(r.spec.get("bugs")) for r in campaign.runs)


def test_the_shipped_repeat_campaign_has_ten_seeds_per_bug_and_a_pass_policy():
    root = pathlib.Path(__file__).resolve().parent.parent
    campaign = load_campaign(str(root / "campaigns" / "raftkv-bugs-repeat.yaml"), store="store")
    assert [len(e.runs) for e in campaign.entries] == [10] * 6
    assert {b for r in campaign.runs for b in r.spec["bugs"]} == {"stale-reads", "no-fsync", "lease-reads", "early-ack", "no-term-check"}
    assert all(e.expect == "invalid" and e.at_least < 1 for e in campaign.entries)
    assert [r.spec["seed"] for r in campaign.entries[0].runs] == list(range(100, 110))


# ---- the pytest plugin: one run with an expectation, inside a user's pytest test

pytest_plugins = ["pytester"]

_PLUGIN_CONFTEST = '''
import json, pathlib, pytest
from types import SimpleNamespace

@pytest.fixture
def tectonic_runner(tmp_path):
    def run(spec):
        valid = not spec.get("bugs")
        run_dir = tmp_path / "store" / "t" / "20240101T000000.000"
        run_dir.mkdir(parents=True)
        checkers = {"linearizable": {"valid": valid, "failures": {} if valid else {"k1": {}},
                                     "explanation": "" if valid else "read 3 from k1; nobody wrote 3"}}
        results = {"valid": valid, "checkers": checkers, "store": spec.get("store")}
        (run_dir / "results.json").write_text(json.dumps(results))
        return SimpleNamespace(valid=valid, run_dir=str(run_dir), results=results)
    return run
'''


def _plugin_args() -> list[str]:
    from importlib.metadata import entry_points
    registered = any(ep.name == "tectonic" for ep in entry_points(group="pytest11"))
    return [] if registered else ["-p", "harness.pytest_plugin"]


def test_pytest_plugin_fails_an_invalid_run_with_anomalies_and_report(pytester):
    pytester.makeconftest(_PLUGIN_CONFTEST)
    pytester.makefile(".yaml", spec="target: raftkv\nworkload: register\nbugs: [stale-reads]\nseed: 3\n")
    pytester.makepyfile('''
        def test_valid(tectonic_run):
            outcome = tectonic_run({"target": "raftkv", "nemesis": ["partition"]})
            assert outcome.valid is True and outcome.results["store"] == "elsewhere"

        def test_invalid_from_yaml(tectonic_run):
            tectonic_run("spec.yaml")

        def test_invalid_as_expected(tectonic_run):
            tectonic_run({"bugs": ["stale-reads"]}, expect="invalid")

        def test_bad_spec(tectonic_run):
            tectonic_run({"workload": "registr"})
        ''')
    result = pytester.runpytest(*_plugin_args(), "--tectonic-store", "elsewhere")
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "tectonic: the run is INVALID (expected valid)" in out
    assert "linearizable: invalid on key(s) k1: read 3 from k1; nobody wrote 3" in out
    assert "report: " in out and "20240101T000000.000/report.html" in out
    assert "repeat: tectonic test --spec " in out
    assert "tectonic: bad spec: spec: field 'workload': unknown workload 'registr'" in out
    assert "Traceback" not in out


# ---- end to end through run_test (an in-process fake target: no cluster needed)

@pytest.mark.slow
def test_campaign_through_run_test_stores_runs_with_reports(tmp_path):
    from harness.run import run_test
    from tests.fakes import FakeCluster, FakeTarget

    def runner(spec):
        # Any bug (a real raftkv one, so the spec passes) makes every add of the fake raise,
        # so the stats checker finds the run invalid.
        broken = {"add"} if spec.get("bugs") else set()
        return run_test(spec, cluster_factory=lambda s, d, needs: FakeCluster(s["node_count"], d),
                        target_factory=lambda s, nodes: FakeTarget(raise_on=broken))

    path = write(tmp_path, """
        name: e2e
        base: {workload: set, time_limit: 0.5, rate: 100, concurrency: 2, node_count: 1,
               recovery_time: 0, op_timeout: 0.2, seed: 7}
        entries:
          - {}
          - {bugs: [stale-reads], expect: invalid}
        """, "e2e.yaml")
    store = tmp_path / "store"
    assert run_campaign(path, store=str(store), runner=runner) == 0
    state = json.loads((store / "campaigns" / "e2e" / "state.json").read_text())
    records = list(state["finished"].values())
    assert [r["verdict"] for r in records] == ["valid", "invalid"]
    for record in records:
        assert os.path.exists(os.path.join(record["run_dir"], "report.html"))
        assert os.path.exists(os.path.join(record["run_dir"], "timeline.html"))
    suite = junit(store, "e2e").find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "0")


@needs_root()
@pytest.mark.slow
@pytest.mark.integration
def test_a_tiny_campaign_on_a_real_raftkv_cluster(tmp_path):
    path = write(tmp_path, """
        name: tiny
        base: {target: raftkv, workload: register, node_count: 3, concurrency: 3, time_limit: 4,
               rate: 50, nemesis_interval: 1.5, recovery_time: 1, seed: 11}
        entries:
          - {nemesis: [partition], expect: valid}
        """, "tiny.yaml")
    store = tmp_path / "store"
    assert run_campaign(path, store=str(store)) == 0
    state = json.loads((store / "campaigns" / "tiny" / "state.json").read_text())
    (record,) = state["finished"].values()
    assert record["verdict"] == "valid"
    html = pathlib.Path(record["run_dir"], "report.html").read_text()
    assert "Every checker passed." in html and "partition" in html
    assert junit(store, "tiny").find("testsuite").get("failures") == "0"
