"""Benchmark: what each backend costs a user. For local, ssh and docker: a whole
`tectonic test` on 5 raftkv nodes with 10 clients and no faults, timed by its phases:

- set-up: nodes created, the target installed, started and healthy;
- op rate: completed client ops per second while the register workload runs unthrottled;
- tear-down: logs collected, the target stopped, the nodes removed.

  .venv/bin/python bench/backends.py [--backends local,ssh,docker] [--runs 3] [--seconds 10]

Needs root. The SSH hosts are this machine's own: an OpenSSH server in each of 5 network
namespaces of the local backend (testkit/sshd_lab.py), so `ssh` measures the protocol and the
remote process control, not a network; the hosts' own set-up is not counted. Every remote
command starts the login shell, which reads root's ~/.bashrc: keep it fast (here one with
`pyenv init` makes a command 0.12 s instead of 0.05 s, and SSH set-up and tear-down are
mostly such commands). Docker uses
tectonic's engine, started (and the node image built) before the first run and reported
apart, since a user pays those once. Prints each run, then per backend the medians and the
ratio of its op rate to the local backend's.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

NODES = 5
CLIENTS = 10
BACKENDS = ("local", "ssh", "docker")


class PhaseClock:
    """Stands in for the progress display: when each phase began, and the client ops."""

    def __init__(self):
        self.began: dict[str, float] = {}
        self.ok = 0
        self.first_op = self.last_op = None

    def phase(self, name: str) -> None:
        self.began.setdefault(name, time.monotonic())

    def op(self, op: dict) -> None:
        if op.get("process") == "nemesis":
            return
        now = time.monotonic()
        if self.first_op is None:
            self.first_op = now
        if op.get("type") == "ok":
            self.ok += 1
            self.last_op = now

    def figures(self) -> dict:
        b = self.began
        span = (self.last_op or 0) - (self.first_op or 0)
        return {"setup_s": b["running"] - b["setup"], "teardown_s": b["checking"] - b["teardown"],
                "ops_per_s": self.ok / span if span > 0 else 0.0}


def one_run(backend: str, backend_opts: dict, seconds: float, store: str) -> dict:
    from harness.run import run_test
    clock = PhaseClock()
    outcome = run_test({"backend": backend, "backend_opts": backend_opts, "target": "raftkv",
                        "workload": "register", "node_count": NODES, "concurrency": CLIENTS,
                        "rate": 0, "time_limit": seconds, "nemesis": [], "seed": 1,
                        "store": store}, progress=clock)
    if outcome.valid is not True:
        raise SystemExit(f"bench/backends.py: the {backend} run was not valid "
                         f"({outcome.valid}): see {outcome.run_dir}")
    return clock.figures()


@contextlib.contextmanager
def ssh_hosts(directory: str):
    """backend_opts for 5 sshd hosts in namespaces of this machine."""
    from testkit.sshd_lab import sshd_hosts
    with sshd_hosts(directory, NODES) as (addresses, keys, _namespaces):
        remote_dir = os.path.join(directory, "on-the-hosts")
        os.makedirs(remote_dir)
        yield {"nodes": addresses, "key_file": keys.client, "known_hosts": keys.known_hosts,
               "remote_dir": remote_dir}


@contextlib.contextmanager
def docker_engine(_directory: str):
    """tectonic's engine up and the node image built before timing; the engine stopped
    afterwards if started here."""
    from harness.control.docker_daemon import DockerDaemon, client_for
    from harness.control.docker_image import ensure_image
    daemon = DockerDaemon()
    started = time.perf_counter()
    daemon.ensure()
    print(f"docker: engine {'started' if daemon.started_here else 'already running'} "
          f"in {time.perf_counter() - started:.2f}s", flush=True)
    try:
        client = client_for()
        try:
            built = ensure_image(client)
        finally:
            client.close()
        print(f"docker: node image {'built in %.0fs' % built if built else 'cached'}", flush=True)
        yield {}
    finally:
        daemon.stop()


@contextlib.contextmanager
def local_nodes(_directory: str):
    yield {}


SETTINGS = {"local": local_nodes, "ssh": ssh_hosts, "docker": docker_engine}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="workload time per run")
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        sys.exit(f"bench/backends.py: unknown backend {', '.join(unknown)} (known: {', '.join(BACKENDS)})")
    if os.geteuid() != 0:
        sys.exit("bench/backends.py: needs root (namespaces, sshd, dockerd)")

    medians = {}
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix=f"tectonic-bench-{backend}-") as directory:
            with SETTINGS[backend](directory) as backend_opts:
                runs = []
                for i in range(args.runs):
                    figures = one_run(backend, backend_opts, args.seconds,
                                      os.path.join(directory, "store"))
                    runs.append(figures)
                    print(f"{backend} run {i + 1}: set-up {figures['setup_s']:.2f}s  "
                          f"tear-down {figures['teardown_s']:.2f}s  "
                          f"{figures['ops_per_s']:.0f} ops/s", flush=True)
        medians[backend] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}

    print(f"\n{NODES} raftkv nodes, {CLIENTS} clients, register, no faults; medians of {args.runs}:")
    local_rate = medians.get("local", {}).get("ops_per_s")
    for backend, m in medians.items():
        ratio = f"; {m['ops_per_s'] / local_rate:.2f}x local" if local_rate else ""
        print(f"{backend}_setup_{NODES}_nodes: {m['setup_s']:.2f} s (no target)")
        print(f"{backend}_teardown_{NODES}_nodes: {m['teardown_s']:.2f} s (no target)")
        print(f"{backend}_register_{CLIENTS}_clients: {m['ops_per_s']:.0f} ops/s (no target{ratio})")

if __name__ == "__main__":
    main()
