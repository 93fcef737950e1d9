"""The docker backend: unit tests against a fake engine, then real containers on a real dockerd.

The real tests start tectonic's own dockerd (no firewall rules, its own socket and data root)
and stop it afterwards; the node image is built on first use (about a minute) and cached in
the engine's data root.
"""
import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time

import pytest

from harness.protocols import Remote, RemoteError
from core.errors import SetupError
from targets.raftkv import RaftKVTarget

docker_sdk = pytest.importorskip("docker", reason="the docker SDK is not installed (pip install docker)")

from harness.control import docker_clean, docker_daemon  # noqa: E402
from harness.control.docker import CLOCK_REFUSAL, PYTHON_DIR, DockerCluster, make_cluster  # noqa: E402
from harness.control.docker_image import PACKAGES, apt_mirror, debootstrap_argv  # noqa: E402
from harness.control.docker_remote import DockerRemote  # noqa: E402


# ------------------------------------------------------------------ the node image recipe

def test_the_mirror_is_the_one_apt_uses_in_either_sources_format(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
        "# a comment\nTypes: deb\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n")
    assert apt_mirror(str(tmp_path)) == "http://mirror.example/debian"

    one_line = tmp_path / "old"
    one_line.mkdir()
    (one_line / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://old.example/debian bookworm main\n")
    assert apt_mirror(str(one_line)) == "http://old.example/debian"

    assert apt_mirror(str(tmp_path / "nothing-here")) == "http://deb.debian.org/debian"


def test_debootstrap_builds_a_minimal_root_with_what_the_targets_need():
    argv = debootstrap_argv("/build/root", "http://mirror.example/debian")
    assert argv[:2] == ["debootstrap", "--variant=minbase"]
    assert argv[-3:] == ["bookworm", "/build/root", "http://mirror.example/debian"]
    included = argv[2].removeprefix("--include=").split(",")
    assert {"python3", "iproute2", "iptables", "procps", "etcd-server"} <= set(included)
    assert included == list(PACKAGES)


def test_dockerd_is_told_to_leave_the_host_firewall_and_sysctls_alone():
    argv = docker_daemon.dockerd_argv()
    for flag in ("--iptables=false", "--ip6tables=false", "--ip-masq=false",
                 "--ip-forward=false", "--bridge=none"):
        assert flag in argv
    assert argv[argv.index("--host") + 1] == docker_daemon.HOST
    assert argv[argv.index("--data-root") + 1] == docker_daemon.DATA_ROOT


# ------------------------------------------------------------------ refusals, one line each

@pytest.mark.parametrize("spec, message", [
    ({"nemesis": ["partition", "clock"]}, CLOCK_REFUSAL),
    ({"backend_opts": {"nodes": ["a", "b"]}}, "backend_opts.nodes is not an option of the docker backend"),
    ({"backend_opts": {"image": 7}}, "backend_opts.image must be a string"),
    ({"backend_opts": {"network": "8.8.8.0/24"}}, "backend_opts.network must be a private /24"),
    ({"backend_opts": {"network": "10.1.2.0/33"}}, "backend_opts.network: not an IPv4 subnet"),
])
def test_make_cluster_refuses_before_creating_anything(spec, message):
    with pytest.raises(SetupError) as e:
        make_cluster({"node_count": 3, "nemesis": [], "backend_opts": {}, **spec}, "/nonexistent")
    assert message in str(e.value)


def test_make_cluster_takes_image_network_and_engine():
    cluster = make_cluster({"node_count": 2, "nemesis": ["kill"], "backend_opts": {
        "image": "mine:1", "network": "10.199.3.0/24", "docker_host": "unix:///x.sock"}}, "/w")
    assert (cluster.image, str(cluster.subnet), cluster.docker_host) == \
        ("mine:1", "10.199.3.0/24", "unix:///x.sock")
    assert cluster.container_name("n2") == f"tectonic-{cluster.names.test_id}-n2"
    assert len(cluster.bridge_name) <= 15


def _tectonic(capsys, *args) -> tuple[int, str]:
    """The command line in this process (as `tectonic ...`): its exit code and stderr."""
    from harness.cli import main
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code, capsys.readouterr().err


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("tectonic:")]


def test_clock_faults_on_docker_are_one_line_and_exit_254(tmp_path, capsys):
    code, err = _tectonic(capsys, "test", "--backend", "docker", "--nemesis", "clock",
                          "--store", str(tmp_path))
    assert code == 254, err
    lines = _error_lines(err)
    assert len(lines) == 1 and "clock faults" in lines[0] and "docker" in lines[0], err
    assert "Traceback" not in err


def test_a_missing_engine_is_one_line_and_exit_254(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"backend: docker\nnode_count: 3\nstore: {tmp_path}\n"
                    f"backend_opts: {{docker_host: 'unix://{tmp_path}/no-engine.sock'}}\n")
    code, err = _tectonic(capsys, "test", "--spec", str(spec))
    assert code == 254, err
    lines = _error_lines(err)
    assert len(lines) == 1 and "no Docker engine answers at unix://" in lines[0], err
    assert "Traceback" not in err


@pytest.fixture
def fake_engine(monkeypatch, tmp_path):
    """A process named dockerd (a copy of sleep) recorded in tectonic's pidfile, as a real
    engine would be; no socket, so only the engine process itself is looked at."""
    monkeypatch.setattr(docker_clean, "SOCKET", str(tmp_path / "absent.sock"))
    monkeypatch.setattr(docker_daemon, "PIDFILE", str(tmp_path / "dockerd.pid"))
    monkeypatch.setattr(docker_daemon, "OWNER_FILE", str(tmp_path / "dockerd.owner"))
    binary = tmp_path / "dockerd"
    shutil.copy(shutil.which("sleep"), binary)
    proc = subprocess.Popen([str(binary), "60"])
    (tmp_path / "dockerd.pid").write_text(f"{proc.pid}\n")
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_clean_stops_an_engine_whose_test_died_and_only_that(fake_engine):
    owner = docker_daemon.OWNER_FILE
    line = f"docker engine dockerd (pid {fake_engine.pid}) started by a test that died"
    # Started by hand (no owner file), or by a test still running: not a leftover.
    assert docker_clean.docker_leftovers() == []
    with open(owner, "w") as f:
        f.write(f"{fake_engine.pid} {os.getpid()}\n")
    assert docker_clean.docker_leftovers() == []
    assert docker_clean.remove_docker_leftovers() == []
    assert fake_engine.poll() is None

    with open(owner, "w") as f:
        f.write(f"{fake_engine.pid} {_dead_pid()}\n")
    assert docker_clean.docker_leftovers() == [line]
    # One test's leftovers never include the engine: other tests may be using it.
    assert docker_clean.docker_leftovers("abc") == []
    assert docker_clean.remove_docker_leftovers("abc") == []
    assert fake_engine.poll() is None

    assert docker_clean.remove_docker_leftovers() == [line]
    assert fake_engine.wait(timeout=5) == -signal.SIGTERM
    assert not os.path.exists(owner)
    assert docker_clean.docker_leftovers() == []


def test_without_dockerd_installed_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setattr(docker_daemon, "answers", lambda *a, **k: False)
    monkeypatch.setattr(docker_daemon.shutil, "which", lambda name: None)
    with pytest.raises(docker_daemon.DockerUnavailable, match=r"apt-get install -y docker.io"):
        docker_daemon.DockerDaemon().ensure()


def test_clean_looks_only_when_tectonics_engine_has_a_socket(monkeypatch, tmp_path):
    monkeypatch.setattr(docker_clean, "SOCKET", str(tmp_path / "absent.sock"))
    monkeypatch.setattr(docker_daemon, "OWNER_FILE", str(tmp_path / "absent.owner"))
    monkeypatch.setattr(docker_clean, "answers", lambda *a: pytest.fail("must not connect"))
    assert docker_clean.docker_leftovers() == []
    assert docker_clean.remove_docker_leftovers("abc") == []


# ------------------------------------------------------------------ DockerRemote, fake engine

class FakeEngine:
    """The few APIClient calls DockerRemote makes; commands answer from a script."""

    def __init__(self, answer=lambda cmd, env: (0, b"", b"")):
        self.answer = answer
        self.calls = []
        self.files: dict[str, bytes] = {}

    def exec_create(self, container, cmd, environment=None):
        self.calls.append((container, cmd, environment))
        return {"Id": len(self.calls)}

    def exec_start(self, exec_id, demux):
        _, cmd, env = self.calls[exec_id["Id"] - 1]
        self._code, out, err = self.answer(cmd, env or {})
        return out, err

    def exec_inspect(self, exec_id):
        return {"ExitCode": self._code}

    def put_archive(self, container, path, data):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar.getmembers():
                self.files[os.path.join(path, m.name)] = tar.extractfile(m).read()
        return True

    def get_archive(self, container, path):
        if path not in self.files:
            raise docker_sdk.errors.NotFound(f"Could not find the file {path} in container")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(os.path.basename(path))
            info.size = len(self.files[path])
            tar.addfile(info, io.BytesIO(self.files[path]))
        return iter([buf.getvalue()]), {}


def test_docker_remote_conforms_and_bounds_every_command_by_its_timeout():
    engine = FakeEngine(lambda cmd, env: (0, b"n1\n", b""))
    remote = DockerRemote(engine, "c1")
    assert isinstance(remote, Remote)
    res = remote.exec(["hostname"], timeout=7)
    assert (res.argv, res.returncode, res.stdout) == (["hostname"], 0, "n1\n")
    assert engine.calls[-1][1] == ["timeout", "--kill-after=2", "7", "hostname"]


def test_docker_remote_errors_name_the_container_and_the_command():
    answers = {"false": (1, b"", b"it failed\n"), "sleep": (124, b"", b""),
               "nosuch": (127, b"", b"")}
    remote = DockerRemote(FakeEngine(lambda cmd, env: answers[cmd[3]]), "c1")
    with pytest.raises(RemoteError, match=r"^c1: false exited 1: it failed$"):
        remote.exec(["false"])
    assert remote.exec(["false"], check=False).returncode == 1
    with pytest.raises(RemoteError, match=r"^c1: sleep 9: no answer within 1s$"):
        remote.exec(["sleep", "9"], timeout=1)
    with pytest.raises(RemoteError, match="nosuch: not found in the container"):
        remote.exec(["nosuch"])


def test_docker_remote_input_reaches_stdin_through_the_environment():
    engine = FakeEngine()
    DockerRemote(engine, "c1").exec(["dd", "of=/x"], input="+5.000s\n", env={"A": "1"})
    _, cmd, env = engine.calls[-1]
    assert cmd[3:6] == ["sh", "-c", cmd[5]] and cmd[-2:] == ["dd", "of=/x"]
    assert env == {"A": "1", "TECTONIC_STDIN": "+5.000s\n"}
    with pytest.raises(RemoteError, match="input of"):
        DockerRemote(engine, "c1").exec(["cat"], input="x" * 200_000)


def test_docker_remote_spawn_returns_the_pid_and_signal_ignores_a_gone_process():
    def answer(cmd, env):
        if cmd[0] == "sh":
            assert cmd[4:7] == ["/d/log", "/d/pid", "/cwd"] and cmd[7:] == ["server", "--x"]
            return 0, b"42\n", b""
        return 1, b"", b"kill: (42) - No such process\n"
    remote = DockerRemote(FakeEngine(answer), "c1")
    assert remote.spawn(["server", "--x"], log="/d/log", pidfile="/d/pid", cwd="/cwd") == 42
    remote.signal(42, signal.SIGKILL)  # gone already: not an error


def test_docker_remote_files_round_trip(tmp_path):
    engine = FakeEngine()
    remote = DockerRemote(engine, "c1")
    src = tmp_path / "a.txt"
    src.write_text("hello")
    remote.put_file(str(src), "/var/lib/x/a.txt")
    assert engine.files == {"/var/lib/x/a.txt": b"hello"}
    remote.get_file("/var/lib/x/a.txt", str(tmp_path / "back" / "b.txt"))
    assert (tmp_path / "back" / "b.txt").read_text() == "hello"
    with pytest.raises(RemoteError, match="c1: copy /nope from the container: Could not find"):
        remote.get_file("/nope", str(tmp_path / "c"))


# ------------------------------------------------------------------ the real thing

def _why_not_real() -> str | None:
    if os.geteuid() != 0:
        return "needs root to run dockerd"
    for tool in ("dockerd", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def _host_firewall() -> list[str]:
    lines = []
    for table in ("filter", "nat"):
        out = subprocess.run(["iptables", "-w", "5", "-t", table, "-S"], capture_output=True,
                             text=True, check=True).stdout.splitlines()
        lines += [f"{table} {line}" for line in out
                  if line.startswith("-P ") or "DOCKER" in line or "docker" in line]
    return lines


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(_why_not_real() is not None, reason=_why_not_real() or "")
def test_a_cluster_of_containers_and_nothing_left_after_it(tmp_path):
    firewall = _host_firewall()
    engine_was_running = docker_daemon.answers()
    cluster = DockerCluster("dkunit", 2, needs=RaftKVTarget.needs)
    try:
        n1, n2 = cluster.create()
        assert (n1.address, n2.address) == (str(cluster.subnet.network_address + 1),
                                            str(cluster.subnet.network_address + 2))
        assert (n1.python, n1.pythonpath) == ("/usr/bin/python3", (PYTHON_DIR,))
        clash = DockerCluster("dkclash", 1, network=str(cluster.subnet))
        with pytest.raises(SetupError, match=f"backend_opts.network {cluster.subnet} overlaps"):
            clash.create()
        assert docker_clean.docker_leftovers("dkclash") == []
        assert n1.remote.exec(["hostname"]).stdout.strip() == "n1"
        assert n1.remote.exec(["cat"], input="in\n").stdout == "in\n"
        with pytest.raises(RemoteError, match="no answer within 1s"):
            n1.remote.exec(["sleep", "30"], timeout=1)

        # the controller reaches a container's port directly, and so does a peer
        pid = n1.remote.spawn([n1.python, "-m", "http.server", "--bind", n1.address, "8000"],
                              log=f"{n1.dir}/http.log", pidfile=f"{n1.dir}/http.pid",
                              cwd=n1.pythonpath[0])
        assert n1.remote.exec(["cat", f"{n1.dir}/http.pid"]).stdout.strip() == str(pid)
        _wait_for_port(n1.address, 8000)
        with socket.create_connection((n1.address, 8000), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert conn.recv(12) == b"HTTP/1.0 200"
        peer = n2.remote.exec([n2.python, "-c", "import socket,sys; "
                               "socket.create_connection((sys.argv[1], 8000), timeout=5)",
                               n1.address])
        assert peer.returncode == 0
        n1.remote.signal(pid, signal.SIGKILL)
        _wait_until(lambda: n1.remote.exec(["test", "-d", f"/proc/{pid}"], check=False).returncode != 0)
        n1.remote.signal(pid, signal.SIGKILL)  # gone: not an error
        n1.remote.get_file(f"{n1.dir}/http.log", str(tmp_path / "http.log"))
        # the controller speaks from the bridge's gateway address: no NAT in between
        assert f'{cluster.controller_address} - - ' in (tmp_path / "http.log").read_text()

        # the nemeses' tools work inside: iptables with NET_ADMIN
        n1.remote.exec(["iptables", "-w", "5", "-A", "INPUT", "-s", n2.address, "-j", "DROP"])
        blocked = n2.remote.exec([n2.python, "-c", "import socket,sys; "
                                  "socket.create_connection((sys.argv[1], 22), timeout=1)",
                                  n1.address], check=False)
        assert "timed out" in blocked.stderr
    finally:
        cluster.destroy()
    assert docker_clean.docker_leftovers("dkunit") == []
    assert cluster.bridge_name not in _links()
    assert docker_daemon.answers() == engine_was_running
    assert _host_firewall() == firewall


@pytest.fixture(scope="module")
def engine():
    """tectonic's dockerd for the whole-test runs; stopped afterwards if started here."""
    firewall = _host_firewall()
    daemon = docker_daemon.DockerDaemon()
    daemon.ensure()
    try:
        yield daemon
    finally:
        daemon.stop()
        assert _host_firewall() == firewall, "dockerd changed the host's firewall"


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(_why_not_real() is not None, reason=_why_not_real() or "")
@pytest.mark.parametrize("target", ["raftkv", "etcd"])
def test_a_whole_test_on_containers_with_partitions_and_kills(engine, target, tmp_path):
    from core.history import load_history
    from harness.run import run_test
    outcome = run_test({"backend": "docker", "target": target, "workload": "register",
                        "node_count": 3, "nemesis": ["partition", "kill"],
                        # both kinds in every fault period: each is surely in the history
                        "nemesis_opts": {"together": 2},
                        "nemesis_interval": 3.0, "time_limit": 15, "concurrency": 4,
                        "rate": 50, "recovery_time": 5, "store": str(tmp_path)})
    assert outcome.valid is True, outcome.results
    history = load_history(os.path.join(outcome.run_dir, "history.jsonl"))
    done = {op["f"]: op["value"] for op in history
            if op["process"] == "nemesis" and op["type"] == "info"}
    assert done["start-partition"]["grudge"], done
    assert done["start-kill"]["killed"], done
    assert sum(op["type"] == "ok" for op in history) > 100
    log_name = "raftkv.log" if target == "raftkv" else "etcd.log"
    assert os.path.getsize(os.path.join(outcome.run_dir, "nodes", "n1", log_name)) > 0
    assert docker_clean.docker_leftovers() == []


def _wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(_why_not_real() is not None, reason=_why_not_real() or "")
def test_tectonic_clean_removes_what_a_crashed_docker_test_left(engine):
    """A crashed docker test's containers, network, bridge and guard route go; a live
    docker test's containers stay through a bare clean, and so does the engine."""
    from harness.control.clean import clean, find_leftovers
    live = DockerCluster("dklive", 1)
    live.create()
    try:
        crashed = DockerCluster("dkcrash", 2)
        crashed.create()  # and never destroyed, as when the controller is SIGKILLed:
        _as_if_its_controller_died("dkcrash")
        expected = ["docker container tectonic-dkcrash-n1", "docker container tectonic-dkcrash-n2",
                    "docker network tectonic-dkcrash"]
        assert sorted(line for line in find_leftovers("dkcrash") if "docker" in line) == expected
        assert not [line for line in find_leftovers() if "dklive" in line]
        guard = f"guard route {crashed.subnet}"
        assert guard in find_leftovers("dkcrash")
        removed = clean()
        assert set(expected + [guard]) <= set(removed)
        assert not [line for line in removed if "dklive" in line or "engine" in line]
        assert find_leftovers("dkcrash") == []
        assert crashed.bridge_name not in _links()
        assert str(crashed.subnet) not in subprocess.run(
            ["ip", "route", "show", "proto", "167"], capture_output=True, text=True).stdout
        assert [node.remote.exec(["true"]).returncode for node in live.nodes] == [0]
    finally:
        live.destroy()
    assert not [line for line in find_leftovers() if "dklive" in line]


def _as_if_its_controller_died(test_id: str) -> None:
    """Rewrite test_id's owner record to name a controller that has exited."""
    import json
    from harness.control import owners
    gone = subprocess.Popen(["true"])
    gone.wait()
    path = owners._path(test_id, owners.OWNERS_DIR)
    with open(path) as f:
        record = json.load(f)
    record["controller"]["pid"] = gone.pid
    with open(path, "w") as f:
        json.dump(record, f)
