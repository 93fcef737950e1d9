"""pytest plugin `tectonic`: run a tectonic test inside a pytest test.

    def test_raftkv_survives_partitions(tectonic_run):
        tectonic_run({"target": "raftkv", "workload": "register", "nemesis": ["partition"]})

    def test_stale_reads_are_caught(tectonic_run):
        tectonic_run("specs/stale-reads.yaml", expect="invalid")

`tectonic_run(spec, expect="valid")` takes a spec dict or a spec YAML path, runs it (the
run is stored as usual) and returns the outcome; when the verdict is not the expected one
the test fails with the anomalies found, the report's path and the command that repeats
the run. `--tectonic-store DIR` puts every run of the session in DIR. The fixture
`tectonic_runner` is the function that runs a spec (harness.run.run_test); override it to
run specs differently.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import pytest

from harness.report.rundir import read_results, repeat_command
from harness.report.summary import describe_failures, verdict_word
from harness.spec import SpecError, load_spec, resolve_spec

_VERDICTS = ("valid", "invalid", "unknown")


def pytest_addoption(parser):
    group = parser.getgroup("tectonic")
    group.addoption("--tectonic-store", default=None, metavar="DIR",
                    help="results store for every tectonic run of this session (default: each spec's own)")


@pytest.fixture
def tectonic_runner() -> Callable[[dict], Any]:
    """Runs one spec and returns its outcome (with .valid and .run_dir)."""
    from harness.run import run_test
    return run_test


@pytest.fixture
def tectonic_run(request, tectonic_runner):
    store = request.config.getoption("tectonic_store")

    def run(spec: dict | str | os.PathLike, expect: str = "valid"):
        if expect not in _VERDICTS:
            raise ValueError(f"expect must be one of {', '.join(_VERDICTS)}, got {expect!r}")
        try:
            spec = load_spec(os.fspath(spec)) if isinstance(spec, (str, os.PathLike)) else dict(spec)
            if store:
                spec["store"] = store
            spec = resolve_spec(spec)
        except SpecError as e:
            pytest.fail(f"tectonic: bad spec: {e}", pytrace=False)
        outcome = tectonic_runner(spec)
        request.node.user_properties.append(("tectonic_run_dir", outcome.run_dir))
        verdict = verdict_word(outcome.valid)
        if verdict != expect:
            pytest.fail(failure_message(outcome, verdict, expect), pytrace=False)
        return outcome

    return run


def failure_message(outcome: Any, verdict: str, expect: str) -> str:
    results = getattr(outcome, "results", None)
    if not isinstance(results, dict):
        results = read_results(outcome.run_dir)
    found = describe_failures(results) if verdict != "valid" else "every checker passed"
    lines = [f"tectonic: the run is {verdict.upper()} (expected {expect})"]
    lines += ["  " + line for line in found.splitlines()]
    lines += [f"report: {os.path.join(outcome.run_dir, 'report.html')}",
              f"repeat: {repeat_command(outcome.run_dir)}"]
    return "\n".join(lines)
