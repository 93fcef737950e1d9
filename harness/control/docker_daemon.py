"""tectonic's own Docker engine: a dockerd that touches nothing of the host's.

A stock dockerd rewrites the host firewall (FORWARD policy DROP, DOCKER chains, NAT), which
breaks other network namespaces on the same host and outlives the engine. Ours runs with
iptables, masquerading and the default bridge off, with its own data root (the image cache,
kept between runs), exec root, pidfile, socket and config file, so it can run beside a
system dockerd and leaves nothing behind when stopped. Containers still reach each other
and the controller over a user-defined bridge: the host holds the bridge's gateway address,
so it routes to the containers directly, with no NAT and no rules.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time

log = logging.getLogger("tectonic.control")

SOCKET = "/run/tectonic-docker.sock"
HOST = f"unix://{SOCKET}"
DATA_ROOT = "/var/lib/tectonic-docker"
EXEC_ROOT = "/run/tectonic-docker"
PIDFILE = "/run/tectonic-docker.pid"
# "<dockerd pid> <controller pid>" while an engine a test started runs: if that controller
# dies without stopping it, `tectonic clean` knows the engine is a leftover. An engine
# started by hand has no owner file and is left alone.
OWNER_FILE = "/run/tectonic-docker.owner"
LOG_FILE = os.path.join(DATA_ROOT, "dockerd.log")
CONFIG_FILE = os.path.join(DATA_ROOT, "daemon.json")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
API_TIMEOUT = 120


class DockerUnavailable(Exception):
    """No Docker engine answers and none can be started here."""


def dockerd_argv() -> list[str]:
    return ["dockerd", "--host", HOST, "--data-root", DATA_ROOT, "--exec-root", EXEC_ROOT,
            "--pidfile", PIDFILE, "--config-file", CONFIG_FILE,
            "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--ip-forward=false",
            "--bridge=none", "--userland-proxy=false",
            # no systemd here, and none needed: plain cgroupfs works everywhere
            "--exec-opt", "native.cgroupdriver=cgroupfs"]


def client_for(host: str = HOST, timeout: int = API_TIMEOUT):
    import docker
    return docker.DockerClient(base_url=host, timeout=timeout)


def answers(host: str = HOST, timeout: int = 3) -> bool:
    """Whether an engine answers on host now."""
    import docker
    import requests
    try:
        client = docker.DockerClient(base_url=host, timeout=timeout)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except (docker.errors.DockerException, requests.RequestException, OSError):
        return False
    finally:
        client.close()


class DockerDaemon:
    """Starts tectonic's dockerd when none answers on its socket, and stops it again,
    only if it started it: an engine someone else runs is theirs to stop."""

    def __init__(self):
        self.started_here = False
        self._proc: subprocess.Popen | None = None

    def ensure(self) -> None:
        if answers():
            return
        if shutil.which("dockerd") is None:
            raise DockerUnavailable("the docker backend needs a Docker engine: no dockerd is "
                                    "installed (apt-get install -y docker.io)")
        if os.geteuid() != 0:
            raise DockerUnavailable(f"no Docker engine answers on {SOCKET}, and starting one "
                                    f"needs root (start it as root: see docs/docker.md)")
        stale = _running_pid()
        if stale is not None:
            raise DockerUnavailable(f"tectonic's dockerd (pid {stale}) runs but does not "
                                    f"answer on {SOCKET}; see {LOG_FILE}, or stop it")
        os.makedirs(DATA_ROOT, exist_ok=True)
        with open(CONFIG_FILE, "w") as f:
            json.dump({}, f)  # never /etc/docker/daemon.json: the system engine's settings
        with open(LOG_FILE, "ab") as out:
            self._proc = subprocess.Popen(dockerd_argv(), stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        self.started_here = True
        with open(OWNER_FILE, "w") as f:
            f.write(f"{self._proc.pid} {os.getpid()}\n")
        deadline = time.monotonic() + START_TIMEOUT
        while not answers(timeout=2):
            if self._proc.poll() is not None:
                self.started_here = False
                _remove_owner_file()
                raise DockerUnavailable(f"dockerd exited {self._proc.returncode} at start: "
                                        f"{_last_line(LOG_FILE)} (log: {LOG_FILE})")
            if time.monotonic() > deadline:
                self.stop()
                raise DockerUnavailable(f"dockerd did not answer on {SOCKET} within "
                                        f"{START_TIMEOUT:.0f}s (log: {LOG_FILE})")
            time.sleep(0.2)
        log.info("started tectonic's dockerd (pid %d) on %s", self._proc.pid, SOCKET)

    def stop(self) -> None:
        """Stop the engine if this instance started it; wait until it is gone."""
        if not self.started_here:
            return
        proc = self._proc
        self.started_here = False
        self._proc = None
        _remove_owner_file()
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.info("stopped tectonic's dockerd")


def orphaned_engine_pid() -> int | None:
    """The pid of tectonic's dockerd when a test started it and died without stopping it."""
    try:
        with open(OWNER_FILE) as f:
            engine, owner = (int(field) for field in f.read().split())
    except (OSError, ValueError):
        return None
    if _running_pid() != engine or _alive(owner):
        return None
    return engine


def stop_orphaned_engine() -> int | None:
    """Stop the engine orphaned_engine_pid names (TERM, then KILL after STOP_TIMEOUT);
    return its pid, or None when there was none."""
    pid = orphaned_engine_pid()
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    _remove_owner_file()
    return pid


def _alive(pid: int) -> bool:
    """Whether pid runs (a zombie, already dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _remove_owner_file() -> None:
    try:
        os.remove(OWNER_FILE)
    except FileNotFoundError:
        pass


def _running_pid() -> int | None:
    try:
        with open(PIDFILE) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/comm") as f:
            return pid if f.read().strip() == "dockerd" else None
    except (OSError, ValueError):
        return None


def _last_line(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 2000))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"
