"""The small protocols every part of tectonic speaks (Jepsen's DB, Client, Nemesis, Remote).

They are structural (typing.Protocol): a target, nemesis or backend conforms by having the
methods, without importing this module, so the lower layers never import the harness.
Each docstring states the contract; the smallest valid implementation sits beside it.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class ExecResult:
    """What one command on a node did."""
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


class RemoteError(Exception):
    """A command on a node failed, or the node could not be reached."""


@runtime_checkable
class Remote(Protocol):
    """One node's shell. Argument vectors, never shell strings built from input.

    Every call has a timeout; a node that does not answer raises RemoteError, it never hangs.
    """

    def exec(self, argv: list[str], *, timeout: float = 30.0, check: bool = True,
             input: str | None = None, env: dict[str, str] | None = None) -> ExecResult:
        """Run argv to completion. check=True raises RemoteError on a non-zero exit."""

    def spawn(self, argv: list[str], *, log: str, pidfile: str,
              env: dict[str, str] | None = None, cwd: str | None = None) -> int:
        """Start argv as a daemon in its own session, stdout+stderr appended to `log`,
        its pid written to `pidfile`; return the pid. Must not wait for it."""

    def signal(self, pid: int, sig: int) -> None:
        """Send sig to pid (and nothing else). A pid that is already gone is not an error."""

    def put_file(self, local: str, remote: str) -> None:
        """Copy a local file to the node."""

    def get_file(self, remote: str, local: str) -> None:
        """Copy a file from the node to the controller."""


@dataclass
class Node:
    """A node of the cluster under test: its name, the address clients and peers use,
    its shell, and a private directory for the target's data and logs."""
    name: str
    address: str
    remote: Any  # a Remote
    dir: str     # on the node: the target keeps its data dir, logs and pidfiles under it
    extra: dict[str, Any] = field(default_factory=dict)


class HostRemote:
    """The smallest valid Remote: commands run directly on the controller's host.

    Used for clusters on loopback (each node a distinct 127.0.0.x address) and in tests.
    """

    def __init__(self, wrap: list[str] | None = None):
        # `wrap` prefixes every argv, e.g. ["ip", "netns", "exec", "tectonic-n1"].
        self.wrap = list(wrap or [])

    def exec(self, argv, *, timeout=30.0, check=True, input=None, env=None):
        full = self.wrap + list(argv)
        try:
            proc = subprocess.run(full, input=input, capture_output=True, text=True,
                                  timeout=timeout, env=_merged_env(env))
        except subprocess.TimeoutExpired as e:
            raise RemoteError(f"{' '.join(full)}: no answer within {timeout}s") from e
        except OSError as e:
            raise RemoteError(f"{' '.join(full)}: {e}") from e
        res = ExecResult(full, proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise RemoteError(f"{' '.join(full)} exited {proc.returncode}: {proc.stderr.strip()[:500]}")
        return res

    def spawn(self, argv, *, log, pidfile, env=None, cwd=None):
        os.makedirs(os.path.dirname(log) or ".", exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(self.wrap + list(argv), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=_merged_env(env), cwd=cwd,
                                    start_new_session=True)
        with open(pidfile, "w") as f:
            f.write(str(proc.pid))
        # The child is reaped by a background wait so it never lingers as a zombie
        # (a zombie would still answer kill(pid, 0) and look alive).
        _reap_later(proc)
        return proc.pid

    def signal(self, pid, sig):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def put_file(self, local, remote):
        import shutil
        os.makedirs(os.path.dirname(remote) or ".", exist_ok=True)
        shutil.copyfile(local, remote)

    def get_file(self, remote, local):
        import shutil
        os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
        shutil.copyfile(remote, local)


def _merged_env(env: dict[str, str] | None) -> dict[str, str] | None:
    if env is None:
        return None
    merged = dict(os.environ)
    merged.update(env)
    return merged


def _reap_later(proc: subprocess.Popen) -> None:
    import threading
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{proc.pid}").start()


@runtime_checkable
class Client(Protocol):
    """Talks to one node of the target on behalf of one worker thread.

    Contract: `open` must not change the state under test. `invoke` takes an invocation op
    (a dict with f and value) and returns its completion: a dict with `type` in
    ok / fail / info, `value` (reads fill in what they saw) and optionally `error`.
    `fail` only when the operation certainly did not take effect; anything uncertain
    (timeout, connection reset after sending, 5xx) is `info`. Every call honours `timeout`
    (seconds); the runner also enforces it from outside.
    """

    def open(self, node: Node) -> None: ...

    def invoke(self, op: dict, timeout: float) -> dict: ...

    def close(self) -> None: ...


class NoopClient:
    """The smallest valid Client: every op succeeds at once and changes nothing."""

    def open(self, node):
        pass

    def invoke(self, op, timeout):
        return {"type": "ok", "value": op.get("value")}

    def close(self):
        pass


@runtime_checkable
class Target(Protocol):
    """A system under test, deployed on nodes (Jepsen's DB protocol).

    Constructed by targets.<name>.make_target(spec: dict, nodes: list[Node]).
    Contracts: `setup` installs and prepares one node (idempotent); `start` starts the
    process on a node, keeping its data dir (a restart after `kill` recovers from it);
    `wait_healthy` returns once the whole cluster serves requests, or raises with what is
    wrong; `kill` is SIGKILL; `pause`/`resume` are SIGSTOP/SIGCONT; `teardown` stops the
    process and removes what `setup` created on the node except its logs; `log_files` lists
    the paths on the node worth collecting; `leader` names the current leader or None;
    `client` returns an unopened Client for one worker.
    """

    name: str

    def setup(self, node: Node) -> None: ...
    def start(self, node: Node) -> None: ...
    def wait_healthy(self, nodes: list[Node], timeout: float) -> None: ...
    def kill(self, node: Node) -> None: ...
    def pause(self, node: Node) -> None: ...
    def resume(self, node: Node) -> None: ...
    def teardown(self, node: Node) -> None: ...
    def log_files(self, node: Node) -> list[str]: ...
    def leader(self, nodes: list[Node]) -> Node | None: ...
    def client(self, node: Node) -> Client: ...


@runtime_checkable
class Nemesis(Protocol):
    """Injects faults. Contract: `invoke` takes a nemesis op (f, value) and returns it as
    done, with `value` saying what was actually done to which nodes (it is recorded as an
    `info` op); `heal` undoes every fault this nemesis may have caused and is idempotent
    (it is called again at teardown, also after errors); `teardown` releases resources."""

    def setup(self) -> None: ...
    def invoke(self, op: dict) -> dict: ...
    def heal(self) -> None: ...
    def teardown(self) -> None: ...


class NoopNemesis:
    """The smallest valid Nemesis: does nothing and says so."""

    def setup(self):
        pass

    def invoke(self, op):
        return {**op, "value": "no faults configured"}

    def heal(self):
        pass

    def teardown(self):
        pass


@runtime_checkable
class Cluster(Protocol):
    """A backend's set of nodes for one test (harness/control/<backend>.py `make_cluster`).

    Contract: `create` makes the nodes and returns them, removing whatever it made if it
    fails half-way; `destroy` removes everything `create` made, is idempotent, and leaves the
    nodes' files for the caller to collect first. `vanished` names what of the created
    cluster has disappeared from under the test (removed by someone else); it is cheap
    enough to call every second, and empty while the cluster is whole.
    """

    def create(self) -> list[Node]: ...

    def destroy(self) -> None: ...

    def vanished(self) -> list[str]: ...
