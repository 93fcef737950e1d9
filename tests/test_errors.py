"""One error discipline: user-fixable errors are core.errors.UserError (one line, exit 254)
on every backend; anything else is a bug (exit 255, one line naming the log that holds the
traceback). In-process and fast; tests/test_bad_inputs.py runs the real command line."""
import json
import math

import pytest

from core.errors import BAD_INPUT, INTERNAL, SetupError, SpecError
from harness import cli
from harness.control.docker import DockerClusterError
from harness.control.netns import ClusterError
from harness.control.ssh import SSHClusterError
from harness.run import run_test
from harness.spec import resolve_spec
from nemesis.combined import check_options
from tests.fakes import FakeCluster


@pytest.mark.parametrize("error", [ClusterError, SSHClusterError, DockerClusterError])
def test_every_backend_reports_setup_trouble_as_a_setup_error(error):
    assert issubclass(error, SetupError)


def _exit(argv, capsys) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    return e.value.code, capsys.readouterr().err.splitlines()


def test_an_internal_error_is_one_line_naming_the_log_with_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("TECTONIC_DEBUG", raising=False)
    monkeypatch.setattr(cli, "load_history", lambda path: 1 / 0)
    code, err = _exit(["check", "h.jsonl", "--model", "register"], capsys)
    assert code == INTERNAL and len(err) == 1
    assert err[0].startswith("tectonic: internal error: ZeroDivisionError: division by zero")
    log = err[0].split("traceback in ")[1].rstrip(")")
    text = open(log).read()
    assert "Traceback (most recent call last)" in text and "1 / 0" in text


def test_tectonic_debug_prints_the_traceback_too(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("TECTONIC_DEBUG", "1")
    monkeypatch.setattr(cli, "load_history", lambda path: 1 / 0)
    code, err = _exit(["check", "h.jsonl", "--model", "register"], capsys)
    assert code == INTERNAL and "Traceback (most recent call last):" in err


def test_a_multi_line_user_error_is_printed_as_one_line(capsys, monkeypatch):
    import harness.run

    def unhealthy(spec, **_):
        raise SetupError("raftkv not healthy after 60s:\nlast log lines:\n  boom")
    monkeypatch.setattr(harness.run, "run_test", unhealthy)
    monkeypatch.setattr(cli, "_reexec_unprivileged", lambda: None)
    code, err = _exit(["test", "--time-limit", "1"], capsys)
    assert code == BAD_INPUT
    assert err == ["tectonic: raftkv not healthy after 60s: | last log lines: | boom"]


def test_an_internal_error_in_a_run_leaves_its_traceback_in_the_runs_log(tmp_path):
    def broken_target(spec, nodes):
        raise KeyError("no such thing")
    spec = {"store": str(tmp_path / "store"), "workload": "set", "time_limit": 0.5,
            "node_count": 1, "recovery_time": 0, "seed": 1}
    with pytest.raises(KeyError) as e:
        run_test(spec, cluster_factory=lambda s, d, needs: FakeCluster(1, d), target_factory=broken_target)
    text = open(e.value.log_path).read()
    assert "Traceback (most recent call last)" in text and "broken_target" in text
    results = json.load(open(e.value.log_path.replace("tectonic.log", "results.json")))
    assert results["valid"] == "unknown" and "did not finish" in results["error"]


def test_a_target_refusing_its_options_is_a_spec_error_before_any_cluster(tmp_path):
    clusters = []
    spec = {"store": str(tmp_path / "store"), "target": "raftkv", "bugs": ["nope"], "time_limit": 1,
            "node_count": 1, "recovery_time": 0, "seed": 1}
    with pytest.raises(SpecError, match="raftkv: unknown bug 'nope'"):
        run_test(spec, cluster_factory=lambda s, d, needs: clusters.append(FakeCluster(1, d)) or clusters[-1])
    assert clusters == [] and not (tmp_path / "store").exists()


def test_a_refused_backend_option_makes_no_run_dir_and_no_work_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR

    def refusing(spec, work_dir, needs):
        raise SetupError("backend_opts.colour is not an option")
    with pytest.raises(SetupError):
        run_test({"store": str(tmp_path / "store"), "time_limit": 1}, cluster_factory=refusing)
    assert not (tmp_path / "store").exists() and list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("field,value", [
    ("nemesis_interval", math.nan), ("time_limit", math.inf), ("rate", -math.inf),
    ("op_timeout", math.nan), ("recovery_time", math.inf),
])
def test_non_finite_numbers_are_refused_by_the_spec(field, value):
    with pytest.raises(SpecError, match=f"field '{field}' must be a finite number"):
        resolve_spec({field: value})


@pytest.mark.parametrize("field", ["nemesis_opts", "workload_opts", "target_opts", "backend_opts"])
def test_non_finite_numbers_are_refused_in_every_option_map(field):
    with pytest.raises(SpecError, match=rf"field '{field}.x\[1\]' must be a finite number"):
        resolve_spec({field: {"x": [1, math.nan]}})


@pytest.mark.parametrize("name", ["..", ".", "...", "latest", "a/b"])
def test_a_name_that_would_leave_its_directory_in_the_store_is_refused(name):
    with pytest.raises(SpecError, match="field 'name'"):
        resolve_spec({"name": name})


@pytest.mark.parametrize("kinds,opts,message", [
    ([], {"partition_shapes": ["halves"]}, "is for the partition fault, which this test does not inject"),
    (["partition"], {"partition_shapes": ["nope"]}, "partition_shapes must be a non-empty list"),
    (["partition"], {"partition_shapes": 5}, "partition_shapes must be a non-empty list"),
    (["kill"], {"kill_targets": ["everyone"]}, "kill_targets must be a non-empty list"),
    (["kill"], {"targets": []}, "targets must be a non-empty list"),
    (["loss"], {"loss_probability": math.nan}, "loss probability must be a number"),
    (["clock"], {"clock_max_offset": math.inf}, "clock_max_offset must be a positive number"),
    (["clock"], {"clock_modes": "bump"}, "clock_modes must be a non-empty list"),
    (["kill"], {"together": 0}, "together must be a whole number"),
    (["delay"], {"delay_mean": math.nan}, "delay mean must be a number of seconds"),
    (["kill"], {"duplicate_probability": 0.5}, "is for the duplicate fault"),
    (["kill"], {"interval": 5}, "unknown nemesis option 'interval' \\(set it with --nemesis-interval\\)"),
    (["kill"], {"partition_targets": ["one"]}, "unknown nemesis option 'partition_targets'"),
])
def test_nemesis_options_are_checked_as_data_before_any_cluster(kinds, opts, message):
    with pytest.raises(ValueError, match=message):
        check_options(kinds, opts)


def test_good_nemesis_options_pass():
    check_options(["partition", "clock"], {"together": 2, "partition_shapes": ["isolate-leader"],
                                           "clock_targets": ["leader"], "clock_modes": ["bump"]})


def test_an_empty_spec_file_is_refused_not_run_with_defaults(tmp_path):
    from harness.spec import read_spec_file
    (tmp_path / "s.yaml").write_text("# nothing\n")
    with pytest.raises(SpecError, match="the spec file is empty"):
        read_spec_file(str(tmp_path / "s.yaml"))
    (tmp_path / "g.yaml").write_bytes(bytes(range(256)))
    with pytest.raises(SpecError, match="not a text file"):
        read_spec_file(str(tmp_path / "g.yaml"))
