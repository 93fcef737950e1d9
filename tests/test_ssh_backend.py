"""The SSH backend: command building (fast), SSHRemote against a real sshd on loopback, and
whole tests over SSH to sshd servers inside the local backend's namespaces.

The real ones run OpenSSH (Debian's openssh-server) with throwaway host and client keys and
a known_hosts file of their own, so host-key checking stays on.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness.control.ssh_commands import (HostSpec, exec_command, kill_marked_command,
                                          parse_host, signal_command, spawn_command, with_env)
from harness.protocols import Remote, RemoteError
from targets.raftkv import RaftKVTarget
from testkit.sshd_lab import SSHD, Keys, sshd, sshd_hosts, wait_for

WEIRD_ARGS = ["it's", '"quoted"', "$HOME", "`id`", "a b", "; rm -rf /", "*", "", "\\n"]


def _ssh_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root (sshd logs in as root; namespaces)"
    if not os.access(SSHD, os.X_OK) or shutil.which("ssh-keygen") is None:
        return "needs openssh-server (apt-get install -y openssh-server)"
    try:
        import paramiko  # noqa: F401
    except ImportError:
        return "needs paramiko (pip install tectonic[ssh])"
    return None


SSH_PROBLEM = _ssh_problem()
needs_sshd = pytest.mark.skipif(SSH_PROBLEM is not None, reason=str(SSH_PROBLEM))


# ------------------------------------------------------------------ host names

@pytest.mark.parametrize("text, want", [
    ("h1", HostSpec("root", "h1", 22)),
    ("admin@h1", HostSpec("admin", "h1", 22)),
    ("admin@10.0.0.7:2222", HostSpec("admin", "10.0.0.7", 2222)),
    ("[fe80::1]:2200", HostSpec("root", "fe80::1", 2200)),
    ("fe80::1", HostSpec("root", "fe80::1", 22)),
])
def test_host_specs_parse(text, want):
    assert parse_host(text) == want


def test_host_defaults_apply_only_when_the_host_names_none():
    assert parse_host("h", "deploy", 2022) == HostSpec("deploy", "h", 2022)
    assert parse_host("u@h:23", "deploy", 2022) == HostSpec("u", "h", 23)


@pytest.mark.parametrize("text", ["", "@h", "h:port", "h:0", "h:70000", "[::1", "a b", "u@"])
def test_bad_host_specs_are_refused_with_the_text(text):
    with pytest.raises(ValueError, match="ssh host"):
        parse_host(text)


# ------------------------------------------------------------------ command lines
# Each command line is run by a local sh, as an SSH server runs it with the login shell:
# what arrives must be exactly the argv, whatever characters it holds.

def _sh(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=10)


def test_exec_command_delivers_the_argv_unchanged():
    argv = [sys.executable, "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", *WEIRD_ARGS]
    import json
    assert json.loads(_sh(exec_command(argv, None, sudo=False)).stdout) == WEIRD_ARGS


def test_exec_command_sets_environment_through_env():
    out = _sh(exec_command(["sh", "-c", 'printf %s "$X"'], {"X": "it's $HOME"}, sudo=False))
    assert out.stdout == "it's $HOME"


def test_sudo_prefixes_a_non_prompting_sudo():
    assert exec_command(["id"], None, sudo=True) == "sudo -n -- id"
    assert signal_command(12, signal.SIGKILL, sudo=True).startswith("sudo -n -- ")
    assert kill_marked_command("M=1", sudo=True).startswith("sudo -n -- ")


@pytest.mark.parametrize("name", ["1X", "A-B", "A B", "A=B", ""])
def test_bad_environment_names_are_refused(name):
    with pytest.raises(ValueError, match="environment variable"):
        with_env(["true"], {name: "v"})


@pytest.mark.parametrize("pid", [0, -1, True, "12"])
def test_signal_refuses_anything_but_a_pid(pid):
    with pytest.raises(ValueError, match="pid"):
        signal_command(pid, 9, sudo=False)


def test_spawn_command_starts_a_daemon_that_writes_its_pid_and_log(tmp_path):
    log, pidfile = tmp_path / "logs dir" / "x's.log", tmp_path / "pid file"
    script = ("import os, sys, time; print(sys.argv[1:], os.environ['V'], os.getcwd(), "
              "os.getsid(0) == os.getpid(), flush=True); time.sleep(30)")
    command = spawn_command([sys.executable, "-c", script, *WEIRD_ARGS], log=str(log),
                            pidfile=str(pidfile), cwd=str(tmp_path), env={"V": "v$1"}, sudo=False)
    started = time.monotonic()
    out = _sh(command)
    try:
        # It returns at once with the pid: the daemon does not hold the command's output.
        assert out.returncode == 0, out.stderr
        assert time.monotonic() - started < 8
        pid = int(out.stdout.strip())
        assert pidfile.read_text().strip() == str(pid)
        assert wait_for(lambda: log.exists() and log.read_text())
        assert log.read_text() == f"{WEIRD_ARGS!r} v$1 {tmp_path} True\n"
    finally:
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_spawn_command_appends_to_the_log_and_reports_a_bad_directory(tmp_path):
    log, pidfile = tmp_path / "log", tmp_path / "pid"
    log.write_text("earlier\n")
    out = _sh(spawn_command(["true"], log=str(log), pidfile=str(pidfile),
                            cwd=str(tmp_path / "missing"), env=None, sudo=False))
    assert out.stdout.strip() == "-"  # no pid: the caller raises with the log's tail
    assert log.read_text().startswith("earlier\n")
    assert "missing" in log.read_text()


def test_kill_marked_command_kills_only_marked_processes(tmp_path):
    marked = subprocess.Popen(["sleep", "30"], env={**os.environ, "TECTONIC_SPAWN": "t-1"})
    other = subprocess.Popen(["sleep", "30"], env={**os.environ, "TECTONIC_SPAWN": "t-10"})
    try:
        assert _sh(kill_marked_command("TECTONIC_SPAWN=t-1", sudo=False)).returncode == 0
        assert marked.wait(timeout=5) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        for p in (marked, other):
            p.kill()
            p.wait()


def test_options_are_checked_before_any_connection():
    from harness.control.ssh import SSHCluster, SSHClusterError
    with pytest.raises(SSHClusterError, match="unknown ssh option 'passwd'"):
        SSHCluster("t", {"nodes": ["h"], "passwd": "x"})
    with pytest.raises(SSHClusterError, match="backend_opts.nodes: ssh host 'h:x'"):
        SSHCluster("t", {"nodes": ["h:x"]})


def test_the_upload_holds_the_targets_packages_without_caches():
    import io
    import tarfile
    from harness.control.python_upload import bundle
    from targets.raftkv import RaftKVTarget
    with tarfile.open(fileobj=io.BytesIO(bundle(RaftKVTarget.needs))) as tar:
        names = tar.getnames()
    assert {n.split("/")[0] for n in names} == {"targets"}
    assert "targets/raftkv/server.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs a system python")
@pytest.mark.parametrize("target", ["raftkv", "maelstrom"])
def test_each_targets_node_modules_import_from_the_upload_alone(target, tmp_path):
    """What a remote node runs imports with only the uploaded bundle: a system python
    outside the project (the venv's would find core and harness through its install)."""
    import io
    import subprocess
    import tarfile
    from harness.control.python_upload import bundle, import_check
    from harness.plugins import target_class
    needs = target_class(target).needs
    with tarfile.open(fileobj=io.BytesIO(bundle(needs))) as tar:
        tar.extractall(tmp_path / "upload")
    proc = subprocess.run(import_check("/usr/bin/python3", str(tmp_path / "upload"), needs),
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------ a real sshd

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def loopback_sshd(tmp_path):
    keys = Keys(tmp_path / "keys")
    port = _free_port()
    keys.trust("127.0.0.1", port)
    with sshd(keys, "127.0.0.1", port):
        yield keys, port


def _remote(keys, port, **kw):
    from harness.control.ssh_remote import SSHRemote
    kw.setdefault("known_hosts", keys.known_hosts)
    return SSHRemote(HostSpec("root", "127.0.0.1", port), name="n1", key_file=keys.client, **kw)


@pytest.mark.slow
@pytest.mark.integration
@needs_sshd
# With sudo (root may use it too), every command also passes through `sudo -n`.
@pytest.mark.parametrize("sudo", [False, pytest.param(True, marks=pytest.mark.skipif(
    shutil.which("sudo") is None, reason="needs sudo (apt-get install -y sudo)"))])
def test_remote_runs_commands_spawns_signals_and_copies_files(loopback_sshd, tmp_path, sudo):
    keys, port = loopback_sshd
    remote = _remote(keys, port, sudo=sudo)
    try:
        assert isinstance(remote, Remote)
        res = remote.exec(["printf", "%s|", *WEIRD_ARGS])
        assert res.stdout == "".join(a + "|" for a in WEIRD_ARGS)
        assert remote.exec(["sh", "-c", 'printf %s "$V"'], env={"V": "it's $X"}).stdout == "it's $X"
        assert remote.exec(["cat"], input="in\n").stdout == "in\n"
        failed = remote.exec(["sh", "-c", "echo oops >&2; exit 3"], check=False)
        assert (failed.returncode, failed.stderr) == (3, "oops\n")
        with pytest.raises(RemoteError, match="exited 3"):
            remote.exec(["sh", "-c", "exit 3"])
        with pytest.raises(RemoteError, match="no answer within 0.5s"):
            remote.exec(["sleep", "5"], timeout=0.5)

        work = tmp_path / "node"
        pid = remote.spawn(["sh", "-c", 'echo "$V"; exec sleep 60'], log=str(work / "log"),
                           pidfile=str(work / "pid"), env={"V": "a'b"})
        # The pid is the command's own (the shell execs sleep once it has echoed).
        assert wait_for(lambda: open(f"/proc/{pid}/cmdline").read().split("\0")[:2] == ["sleep", "60"])
        assert wait_for(lambda: (work / "log").read_text() == "a'b\n")
        assert os.getsid(pid) == pid
        remote.signal(pid, signal.SIGKILL)
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}")
                         or " Z " in open(f"/proc/{pid}/stat").read())
        remote.signal(pid, signal.SIGKILL)  # gone already: not an error

        with pytest.raises(RemoteError, match="did not start"):
            remote.spawn(["true"], log=str(work / "log2"), pidfile=str(work / "pid2"),
                         cwd=str(tmp_path / "missing"))

        (tmp_path / "up").write_bytes(bytes(range(256)))
        remote.put_file(str(tmp_path / "up"), str(work / "deep" / "copy"))
        remote.get_file(str(work / "deep" / "copy"), str(tmp_path / "back" / "copy"))
        assert (tmp_path / "back" / "copy").read_bytes() == bytes(range(256))
        with pytest.raises(RemoteError, match="sftp get"):
            remote.get_file(str(work / "absent"), str(tmp_path / "absent"))
    finally:
        remote.close()


@pytest.mark.integration
@needs_sshd
def test_remote_reconnects_after_the_connection_dies(loopback_sshd):
    keys, port = loopback_sshd
    remote = _remote(keys, port)
    try:
        assert remote.exec(["echo", "one"]).stdout == "one\n"
        # The command's parent is this connection's sshd: killing it cuts the connection
        # as a host restart does.
        try:
            remote.exec(["sh", "-c", "kill -9 $PPID; sleep 5"], timeout=10)
        except RemoteError:
            pass
        assert wait_for(lambda: not remote._alive())
        assert remote.exec(["echo", "two"]).stdout == "two\n"
    finally:
        remote.close()


@pytest.mark.integration
@needs_sshd
def test_kill_spawned_kills_what_spawn_started(loopback_sshd, tmp_path):
    keys, port = loopback_sshd
    remote = _remote(keys, port)
    try:
        pid = remote.spawn(["sleep", "60"], log=str(tmp_path / "log"), pidfile=str(tmp_path / "pid"))
        remote.kill_spawned()
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}")
                         or " Z " in open(f"/proc/{pid}/stat").read())
    finally:
        remote.close()


@pytest.mark.integration
@needs_sshd
def test_connection_failures_are_one_clear_line(loopback_sshd, tmp_path):
    from harness.control.ssh_remote import SSHConnectError
    keys, port = loopback_sshd
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    wrong = Keys(tmp_path / "wrong")
    wrong.trust("127.0.0.1", port)  # a different host key under this host's name

    cases = [
        (dict(known_hosts=str(tmp_path / "empty_known_hosts")), "host key unknown"),
        (dict(known_hosts=wrong.known_hosts), "host key does not match known_hosts"),
        (dict(key_file=str(stranger)), "login refused"),
    ]
    (tmp_path / "empty_known_hosts").write_text("")
    for kw, message in cases:
        from harness.control.ssh_remote import SSHRemote
        remote = SSHRemote(HostSpec("root", "127.0.0.1", port), name="n1",
                           **{"key_file": keys.client, "known_hosts": keys.known_hosts, **kw})
        with pytest.raises(SSHConnectError, match=message) as e:
            remote.connect()
        assert "\n" not in str(e.value)
    closed = SSHRemote(HostSpec("root", "127.0.0.1", _free_port()), key_file=keys.client,
                       known_hosts=keys.known_hosts, connect_timeout=3)
    with pytest.raises(SSHConnectError, match="cannot reach the host"):
        closed.connect()


@pytest.mark.integration
@needs_sshd
def test_insecure_host_keys_accepts_an_unknown_key_and_warns(loopback_sshd, tmp_path, caplog):
    keys, port = loopback_sshd
    (tmp_path / "empty").write_text("")
    remote = _remote(keys, port, known_hosts=str(tmp_path / "empty"), insecure_host_keys=True)
    try:
        with caplog.at_level("WARNING", logger="tectonic.control"):
            assert remote.exec(["echo", "in"]).stdout == "in\n"
        assert "host key NOT checked" in caplog.text
    finally:
        remote.close()


# ------------------------------------------------------------------ whole tests over SSH

def _ssh_spec(tmp_path, addresses, keys, **kw):
    return {"backend": "ssh", "store": str(tmp_path / "store"), "concurrency": 6, "rate": 100,
            "time_limit": 15, "nemesis": ["partition", "kill"], "nemesis_interval": 2,
            "recovery_time": 4, "seed": 5, "workload": "register",
            # Both faults in every fault period: the history surely holds each.
            "nemesis_opts": {"together": 2},
            "backend_opts": {"nodes": addresses, "key_file": keys.client,
                             "known_hosts": keys.known_hosts}, **kw}


def _assert_valid_with_faults(outcome):
    from core.history import read_jsonl
    history = read_jsonl(os.path.join(outcome.run_dir, "history.jsonl"))
    done = {op["f"] for op in history if op.get("process") == "nemesis" and op["type"] == "info"}
    assert {"start-partition", "start-kill"} <= done, done
    assert outcome.valid is True, outcome.results
    assert sum(op["type"] == "ok" for op in history) > 50


@pytest.mark.slow
@pytest.mark.integration
@needs_sshd
@pytest.mark.parametrize("target", ["raftkv", "etcd"])
def test_a_whole_test_over_ssh_is_valid_with_partitions_and_kills(tmp_path, target):
    from harness.run import run_test
    if target == "etcd" and not os.access("/usr/bin/etcd", os.X_OK):
        pytest.skip("needs etcd (apt-get install -y etcd-server)")
    with sshd_hosts(tmp_path, 3) as (addresses, keys, netns):
        remote_dir = tmp_path / "on-the-hosts"
        remote_dir.mkdir()
        spec = _ssh_spec(tmp_path, addresses, keys, target=target)
        spec["backend_opts"]["remote_dir"] = str(remote_dir)
        outcome = run_test(spec)
        _assert_valid_with_faults(outcome)
        # The nodes' logs came back; nothing the test started or wrote is left on the hosts.
        nodes_dir = os.path.join(outcome.run_dir, "nodes")
        assert sorted(os.listdir(nodes_dir)) == ["n1", "n2", "n3"]
        assert all(os.path.getsize(os.path.join(nodes_dir, n, f"{target}.log")) > 0
                   for n in ("n1", "n2", "n3"))
        assert os.listdir(remote_dir) == []
        assert _processes_in(netns) <= {"sshd"}


def _processes_in(namespaces) -> set[str]:
    names = set()
    for ns in namespaces:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                names.add(open(f"/proc/{pid}/comm").read().strip())
            except OSError:
                pass  # exited meanwhile
    return names


# ------------------------------------------------------------------ refusals from the command line

def _tectonic_test(tmp_path, capsys, backend_opts: dict) -> tuple[int, str]:
    """`tectonic test --spec` on the ssh backend: (exit code, stderr)."""
    import yaml
    from harness.cli import main
    spec = {"target": "raftkv", "workload": "register", "time_limit": 5, "backend": "ssh",
            "store": str(tmp_path / "store"), "backend_opts": backend_opts}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SystemExit) as e:
        main(["test", "--spec", str(path)])
    return e.value.code, capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.integration
@needs_sshd
def test_bad_hosts_exit_254_with_one_line_and_leave_nothing_behind(loopback_sshd, tmp_path, capsys):
    keys, port = loopback_sshd
    remote_dir = tmp_path / "on-the-host"
    remote_dir.mkdir()
    good = f"127.0.0.1:{port}"
    base = {"key_file": keys.client, "known_hosts": keys.known_hosts, "remote_dir": str(remote_dir)}
    stranger = Keys(tmp_path / "stranger")
    other_keys = Keys(tmp_path / "other")
    other_keys.trust("127.0.0.1", port)
    cases = {
        # The good host is set up first and must be cleaned up after its peer fails.
        "cannot reach the host": {**base, "nodes": [good, f"127.0.0.1:{_free_port()}"]},
        "host key does not match known_hosts": {**base, "nodes": [good],
                                                "known_hosts": other_keys.known_hosts},
        "login refused": {**base, "nodes": [good], "key_file": stranger.client},
        "host key unknown": {**base, "nodes": [good], "known_hosts": str(tmp_path / "empty")},
    }
    (tmp_path / "empty").write_text("")
    for message, opts in cases.items():
        code, err = _tectonic_test(tmp_path, capsys, opts)
        lines = [line for line in err.splitlines() if line.startswith("tectonic:")]
        assert code == 254, err
        assert len(lines) == 1 and message in lines[0], err
        assert "Traceback" not in err
        assert os.listdir(remote_dir) == [], message


# ------------------------------------------------------------------ clock faults on hosts

class ScriptedRemote:
    """A Remote that records every argv and answers from a table: {first words: (rc, out)}."""

    def __init__(self, answers: dict, name="n1"):
        self.answers, self.name, self.calls = answers, name, []

    def exec(self, argv, *, timeout=30.0, check=True, input=None, env=None):
        from harness.protocols import ExecResult
        self.calls.append(list(argv))
        rc, out = next((v for k, v in self.answers.items() if tuple(argv[:len(k)]) == k), (0, ""))
        if check and rc:
            raise RemoteError(f"{argv} exited {rc}")
        return ExecResult(list(argv), rc, out, "")


def test_shared_kernels_are_refused_and_separate_hosts_are_not():
    from harness.control.ssh_clock import shared_kernel_refusal
    assert shared_kernel_refusal({"n1": "a", "n2": "b"}, "me") is None
    assert "n2 run(s) on the controller's own kernel" in shared_kernel_refusal({"n1": "a", "n2": "me"}, "me")
    assert "n1, n3 share one kernel" in shared_kernel_refusal({"n1": "a", "n2": "b", "n3": "a"}, "me")


def _host_clock(answers, boot="host-boot"):
    from harness.control.ssh_clock import BOOT_ID, HostClock
    remote = ScriptedRemote({("cat", BOOT_ID): (0, boot + "\n"), **answers})
    return HostClock(remote, controller="controller-boot", now=lambda: 1000.0), remote


def test_host_clock_stops_ntp_once_moves_the_clock_and_restores_both():
    clock, remote = _host_clock({("systemctl", "is-active", "systemd-timesyncd"): (0, "active\n"),
                                 ("systemctl", "is-active"): (3, "inactive\n")})
    clock.set_offset(5.25)
    clock.set_offset(-3)
    dates = [c for c in remote.calls if c[0] == "date"]
    assert dates == [["date", "-s", "@1005.250000"], ["date", "-s", "@997.000000"]]
    assert [c for c in remote.calls if c[:2] == ["systemctl", "stop"]] == \
        [["systemctl", "stop", "systemd-timesyncd"]]
    remote.calls.clear()
    clock.restore()
    assert remote.calls == [["date", "-s", "@1000.000000"], ["systemctl", "start", "systemd-timesyncd"]]
    remote.calls.clear()
    clock.restore()
    assert remote.calls == []  # nothing moved since: nothing to do


def test_host_clock_never_touches_a_clock_it_shares():
    from harness.control.ssh_clock import ClockFaultRefused
    clock, remote = _host_clock({}, boot="controller-boot")
    with pytest.raises(ClockFaultRefused, match="controller's own kernel"):
        clock.set_offset(1)
    assert remote.calls == [["cat", "/proc/sys/kernel/random/boot_id"]]


def test_host_clock_refuses_a_time_daemon_it_cannot_restart():
    from harness.control.ssh_clock import ClockFaultRefused
    clock, remote = _host_clock({("sh", "-c", "command -v systemctl"): (1, ""),
                                 ("pgrep",): (0, "412 chronyd\n")})
    with pytest.raises(ClockFaultRefused, match=r"a time daemon runs \(chronyd\)"):
        clock.set_offset(1)
    assert not any(c[0] == "date" for c in remote.calls)


@pytest.mark.slow
@pytest.mark.integration
@needs_sshd
def test_cluster_on_this_machine_refuses_clock_faults_and_cleans_up(loopback_sshd, tmp_path):
    from harness.control.ssh import SSHCluster
    keys, port = loopback_sshd
    remote_dir = tmp_path / "on-the-host"
    remote_dir.mkdir()
    cluster = SSHCluster("clk1", {"nodes": [f"127.0.0.1:{port}"], "key_file": keys.client,
                                  "known_hosts": keys.known_hosts, "remote_dir": str(remote_dir)},
                         needs=RaftKVTarget.needs, clock_faults=True)
    try:
        [node] = cluster.create()
        assert "controller's own kernel" in node.clock_refused
        assert node.clock is None
        assert (node.name, node.address, node.dir) == ("n1", "127.0.0.1",
                                                       str(remote_dir / "tectonic-clk1" / "n1"))
        # The uploaded modules run with the host's python, from where the node says.
        out = node.remote.exec([node.python, "-c", "import targets.raftkv.server, sys; "
                                "print(sys.modules['targets.raftkv.server'].__file__)"],
                               env={"PYTHONPATH": ":".join(node.pythonpath)})
        assert out.stdout.startswith(node.pythonpath[0] + "/targets/raftkv/")
    finally:
        cluster.destroy()
    assert os.listdir(remote_dir) == []
    cluster.destroy()  # idempotent
