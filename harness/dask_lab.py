"""A Dask cluster on one machine whose workers are separate hosts: each worker runs in a
network namespace of its own, joined to the scheduler by a bridge. For trying
`tectonic campaign --dask` without a second machine, and for its tests and benchmark.

    with DaskLab(workers=2) as lab:      # as root; best inside a private host
        run_campaign(path, executor=DaskExecutor(lab.address))
        lab.kill_worker(0); lab.start_worker(0)

Layout (TAG: a random tag of the lab):

    this namespace: bridge dl<TAG>br, 10.251.0.1/24, the scheduler on it
    namespace daskhost-<TAG>-w<i>: veth 10.251.0.<10+i>/24, a dask worker

A worker's tests make their own node namespaces from inside its namespace, so each
cluster's controller link sits in that worker's namespace, as it would on a separate host.
The namespaces share this machine's file system, /run included: their tests see each
other's owner records, which keeps their subnets apart (control/local.py), and a worker's
clean before each run also finds what a dead worker on the other "host" left.

The namespaces are named without tectonic's PREFIX on purpose: `tectonic clean` must not
take the lab's hosts for leftovers. Traffic stays between this namespace and the lab's.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time

from harness.control.netns import delete_link, delete_netns, kill_netns_processes, run

NETWORK = "10.251.0"
SCHEDULER_PORT = 8786


class DaskLab:
    """A scheduler here and `workers` workers in namespaces; `close` removes all of it."""

    def __init__(self, workers: int = 2, nthreads: int = 1, start_timeout: float = 60.0):
        self.tag = secrets.token_hex(2)
        self.count, self.nthreads, self.start_timeout = workers, nthreads, start_timeout
        self.bridge = f"dl{self.tag}br"
        self.address = f"tcp://{NETWORK}.1:{SCHEDULER_PORT}"
        self.netns = [f"daskhost-{self.tag}-w{i}" for i in range(workers)]
        self.workers: list[subprocess.Popen | None] = [None] * workers
        self.scheduler: subprocess.Popen | None = None
        self.dir = tempfile.mkdtemp(prefix=f"tectonic-dask-lab-{self.tag}-")
        self._made: list[tuple[str, str]] = []

    def __enter__(self) -> DaskLab:
        try:
            self._network()
            self.scheduler = self._spawn("scheduler", [
                sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", f"{NETWORK}.1",
                "--port", str(SCHEDULER_PORT), "--no-dashboard"])
            self._wait_for_port(f"{NETWORK}.1", SCHEDULER_PORT)
            for i in range(self.count):
                self.start_worker(i)
            self.wait_for_workers(self.count)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def worker_address(self, i: int) -> str:
        return f"{NETWORK}.{10 + i}"

    def start_worker(self, i: int) -> subprocess.Popen:
        """(Re)start worker i in its namespace; returns its process (the worker itself:
        nsenter execs it, so its pid is the worker's)."""
        self.workers[i] = self._spawn(f"worker{i}", [
            "nsenter", f"--net=/run/netns/{self.netns[i]}", "--",
            sys.executable, "-m", "distributed.cli.dask_worker", self.address,
            "--host", self.worker_address(i), "--nthreads", str(self.nthreads), "--no-nanny",
            "--no-dashboard", "--local-directory", os.path.join(self.dir, f"w{i}")])
        return self.workers[i]

    def kill_worker(self, i: int) -> None:
        """SIGKILL worker i, as a host that loses power would stop: no teardown runs."""
        proc = self.workers[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def dask_address(self, i: int) -> str:
        """The address the scheduler knows worker i by (tcp://IP:PORT; the port is new
        each time the worker starts)."""
        from distributed import Client
        with Client(self.address, timeout=self.start_timeout, set_as_default=False) as client:
            workers = client.scheduler_info()["workers"]
        [address] = [a for a in workers if a.startswith(f"tcp://{self.worker_address(i)}:")]
        return address

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client
        with Client(self.address, timeout=self.start_timeout, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=self.start_timeout)

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        for kind, name in reversed(self._made):
            if kind == "netns":
                kill_netns_processes(name)
                delete_netns(name)
            else:
                delete_link(name)
        self._made = []
        subprocess.run(["rm", "-rf", self.dir], check=False)

    # ------------------------------------------------------------ parts

    def _network(self) -> None:
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        self._made.append(("link", self.bridge))
        run(["ip", "addr", "add", f"{NETWORK}.1/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        for i, netns in enumerate(self.netns):
            run(["ip", "netns", "add", netns])
            self._made.append(("netns", netns))
            outside = f"dl{self.tag}h{i}"
            run(["ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", netns])
            self._made.append(("link", outside))
            run(["ip", "link", "set", outside, "master", self.bridge, "up"])
            run(["ip", "-n", netns, "link", "set", "lo", "up"])
            run(["ip", "-n", netns, "addr", "add", f"{self.worker_address(i)}/24", "dev", "eth0"])
            run(["ip", "-n", netns, "link", "set", "eth0", "up"])

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(os.path.join(self.dir, f"{name}.log"), "ab")
        try:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
        finally:
            log.close()

    def _wait_for_port(self, host: str, port: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host, port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the Dask scheduler did not listen on {host}:{port} "
                           f"(log: {self.dir}/scheduler.log)")
