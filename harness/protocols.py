"""The small protocols every part of tectonic speaks (Jepsen's DB, Client, Nemesis, Remote).

This module is the public API for plugins (README: "Testing your own system"). Client,
Nemesis and Remote are structural (typing.Protocol): having the methods is conforming.
Target is a base class, and its optional capabilities (HealthCheck, Kill, Pause, Primary,
LogFiles, Clock, DataDir, Membership) are base classes a target declares by subclassing them, as a Jepsen DB
extends the protocols it supports: what a target can do is declared, never guessed from
the methods it happens to have. Each docstring states the contract; the smallest valid
implementation sits beside each protocol.
"""
from __future__ import annotations

import os
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
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

    A Remote also keeps `spawned`, a list of (pid, argv) of everything `spawn` started, in
    order: the harness sees from it what runs on the node without asking the target, and
    so checks that a kill or a pause had its effect (nemesis/observe.py). A Remote without
    it runs faults that cannot be checked. (Not a protocol member: isinstance does not
    ask for it.)
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


@runtime_checkable
class NodeClock(Protocol):
    """A node's real clock, which its backend can move (hosts of their own, over SSH)."""

    def set_offset(self, seconds: float) -> None:
        """Put the node's clock `seconds` away from the true time (0 puts it back)."""

    def restore(self) -> None:
        """Undo every offset (idempotent)."""


@dataclass
class Node:
    """A node of the cluster under test, as its backend made it.

    `name`, the `address` clients and peers use, its shell (`remote`, a Remote) and a
    private directory `dir` on the node where the target keeps its data, logs and pidfiles.
    What the backend provides for the target's NodeNeeds: `python`, the interpreter to run
    the target's Python modules with, and `pythonpath`, the directories that make them
    importable. For the clock nemesis: `clock`, when the backend can move this node's real
    clock, or `clock_refused`, why it cannot (a target with the Clock capability still can).
    `backend` names the backend that made it (local, ssh, docker), for faults that need a
    helper of ours beside the node and can have it only on some backends; on the local
    backend `netns` is the node's network namespace (such helpers run in it).
    """
    name: str
    address: str
    remote: Any
    dir: str
    backend: str = "local"
    netns: str | None = None
    python: str = sys.executable
    pythonpath: tuple[str, ...] = ()
    clock: NodeClock | None = None
    clock_refused: str | None = None


class HostRemote:
    """The smallest valid Remote: commands run directly on the controller's host.

    Used for clusters on loopback (each node a distinct 127.0.0.x address) and in tests.
    """

    def __init__(self, wrap: list[str] | None = None):
        # `wrap` prefixes every argv, e.g. ["ip", "netns", "exec", "tectonic-n1"].
        self.wrap = list(wrap or [])
        self.spawned: list[tuple[int, list[str]]] = []

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
        self.spawned.append((proc.pid, list(argv)))
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


@dataclass(frozen=True)
class Option:
    """One option a target declares: `--target-opt name=VALUE` (VALUE read as YAML) or
    `target_opts: {name: VALUE}` in a spec. `type` is one of bool, int, float, str, list,
    dict, or a tuple of them (either is taken); an int is taken for a float. `default` None
    means "not set" (the target decides, or its validate requires it)."""
    name: str
    type: type | tuple[type, ...]
    default: Any
    help: str


@dataclass(frozen=True)
class NodeNeeds:
    """What a target needs on every node, beyond a shell; every backend provides it, or
    refuses with one line before the test starts.

    `python_modules`: modules the target runs on the nodes with `node.python` (e.g.
    `python -m targets.raftkv.server`). Each backend makes their top-level packages
    importable there -- on loopback and in namespaces from where they are on the controller,
    on remote hosts and containers by uploading them -- lists the directories in
    `node.pythonpath`, and proves each module imports before any target code runs.
    """
    python_modules: tuple[str, ...] = ()

    def top_level(self) -> tuple[str, ...]:
        """The top-level packages (or single-file modules) to provide, once each."""
        return tuple(dict.fromkeys(m.split(".")[0] for m in self.python_modules))

    def sources(self) -> list[str]:
        """Each top-level package's directory (or single module's file) on the controller."""
        import importlib.util
        paths = []
        for name in self.top_level():
            spec = importlib.util.find_spec(name)
            if spec is None or not (spec.submodule_search_locations or spec.origin):
                raise ModuleNotFoundError(f"no module named {name!r} on the controller")
            locations = list(spec.submodule_search_locations or [])
            paths.append(locations[0] if locations else spec.origin)
        return paths

    def local_pythonpath(self) -> tuple[str, ...]:
        """The directories that hold the sources on the controller: what a node sharing
        the controller's file system puts in `node.pythonpath`."""
        return tuple(dict.fromkeys(os.path.dirname(p) for p in self.sources()))


class Target(ABC):
    """A system under test, deployed on nodes (Jepsen's DB protocol). Public API: a
    plugin subclasses this and the capabilities below that it offers.

    Constructed as `cls(spec, nodes)` with the resolved spec, whose `target_opts` holds a
    value for every declared option (validated, defaults filled in); the default
    constructor keeps them as `self.spec`, `self.opts` and `self.nodes`.

    Class attributes: `name` (for logs and test names), `options` (tuple of Option: the
    only keys `--target-opt` accepts), `needs` (NodeNeeds: what each node must provide),
    `features` (what its clients can do, by the names workloads ask for: "register"
    (read/write/cas on [key, value]), "set" (add/read-list), "list-append" and
    "rw-register" (txn), "lock" (acquire/release), "counter" (increment/read), "bank"
    (open-accounts/transfer/read-balances); a workload needing a feature the target
    lacks is refused before any cluster is made).

    Contracts: `setup` installs, prepares and starts one node (called once per node, all
    nodes at once); `teardown` stops the node's process and removes what `setup` created
    on the node except its logs (called also after errors, also on a node whose setup
    failed); `client` returns an unopened Client for one worker thread talking to `node`.
    """

    name: str = "target"
    options: tuple[Option, ...] = ()
    needs: NodeNeeds = NodeNeeds()
    features: frozenset[str] = frozenset()

    def __init__(self, spec: dict, nodes: list[Node]):
        self.spec = spec
        # Defaults again, for a target constructed by hand (tests, benchmarks).
        self.opts = {**{o.name: o.default for o in self.options}, **(spec.get("target_opts") or {})}
        self.nodes = list(nodes)

    @classmethod
    def validate(cls, spec: dict) -> None:
        """Refuse, with a core.errors.SpecError naming the field, a spec this target cannot
        run. Called before any cluster is made, with `target_opts` complete and of the
        declared types; it may normalize `target_opts` in place (a relative path made
        absolute), so the stored spec repeats the run, and resolving again changes nothing.
        The default refuses bug switches (spec["bugs"]): only a target that has them reads
        that field."""
        if spec.get("bugs"):
            from core.errors import SpecError
            raise SpecError(f"target {cls.name} has no bug switches (spec field bugs: "
                            f"{', '.join(spec['bugs'])})")

    @classmethod
    def needs_for(cls, spec: dict) -> NodeNeeds:
        """What each node must provide for this (resolved) spec; by default `needs`."""
        return cls.needs

    @abstractmethod
    def setup(self, node: Node) -> None: ...

    @abstractmethod
    def teardown(self, node: Node) -> None: ...

    @abstractmethod
    def client(self, node: Node) -> Client: ...


class NoopTarget(Target):
    """The smallest valid Target: nothing to deploy; its clients are NoopClients."""
    name = "noop"

    def setup(self, node):
        pass

    def teardown(self, node):
        pass

    def client(self, node):
        return NoopClient()


# ---- optional capabilities: a target subclasses those it offers (Jepsen's Kill, Pause,
# Primary, LogFiles); the harness and the nemeses ask `isinstance`, never probe for methods.

class HealthCheck(ABC):
    """`wait_healthy` returns once the whole cluster serves requests, or raises a
    core.errors.SetupError saying what is wrong (and which logs tell more). Called after
    every node's setup; without it, the test starts as soon as setup returns."""

    @abstractmethod
    def wait_healthy(self, nodes: list[Node], timeout: float) -> None: ...


class Kill(ABC):
    """Crash faults (the kill nemesis). `kill` is SIGKILL: it returns once the process is
    gone, and does nothing to a node already down. `start` starts the process again
    keeping its data dir (a restart recovers from what was on disk), and does nothing to
    a node that runs."""

    @abstractmethod
    def start(self, node: Node) -> None: ...

    @abstractmethod
    def kill(self, node: Node) -> None: ...


class Pause(ABC):
    """Pause faults (the pause nemesis): `pause` is SIGSTOP, `resume` SIGCONT. `resume`
    of a node that is not paused does nothing (teardown resumes every node)."""

    @abstractmethod
    def pause(self, node: Node) -> None: ...

    @abstractmethod
    def resume(self, node: Node) -> None: ...


class Primary(ABC):
    """`leader` names the node that leads now, or None when none does or it cannot tell
    (nemesis node selection `leader`). It must answer within a few seconds even when
    nodes are cut off or paused."""

    @abstractmethod
    def leader(self, nodes: list[Node]) -> Node | None: ...


class LogFiles(ABC):
    """`log_files` lists the paths on the node worth keeping; teardown copies them into
    the run's nodes/<node>/ before the node is removed."""

    @abstractmethod
    def log_files(self, node: Node) -> list[str]: ...


class Clock(ABC):
    """Clock faults through the target (e.g. libfaketime), for nodes whose backend cannot
    move a real clock. `set_clock_offset` moves the node's clock `seconds` away from the
    true time at once (0 puts it back); a node where it cannot raises SetupError."""

    @abstractmethod
    def set_clock_offset(self, node: Node, seconds: float) -> None: ...


class DataDir(ABC):
    """`data_dir` names the directory on the node that holds the target's durable state
    (disk faults lay a lazy filesystem over it before setup; it needs Kill too, to crash
    and restart the node). setup must create what it needs inside it, not the dir itself
    again with other permissions."""

    @abstractmethod
    def data_dir(self, node: Node) -> str: ...


class Membership(ABC):
    """Membership changes (the membership nemesis), one server at a time through the
    target's own reconfiguration (Raft's configuration change, etcd's member API).

    `members` names the nodes in the cluster's configuration now (raises SetupError when
    no member can tell). `remove_member` takes node out of the configuration and returns
    once the change is committed; the node's process is then stopped and its data wiped,
    as an operator would (it may be kept running as an empty spare, serving nothing).
    `add_member` brings a node that is not a member back as a new server (fresh data
    dir, joining the running cluster) and returns once the change is committed. Both
    return the member list after the change, and raise SetupError when the cluster
    refuses or does not answer in time (the change may then still happen: `members`
    tells). Each must keep working while other faults are in force, or say why not."""

    @abstractmethod
    def members(self, nodes: list[Node]) -> list[str]: ...

    @abstractmethod
    def add_member(self, node: Node, nodes: list[Node]) -> list[str]: ...

    @abstractmethod
    def remove_member(self, node: Node, nodes: list[Node]) -> list[str]: ...


CAPABILITIES: dict[str, type] = {"health check": HealthCheck, "kill": Kill, "pause": Pause,
                                 "primary": Primary, "log files": LogFiles, "clock": Clock,
                                 "data dir": DataDir, "membership": Membership}


def capabilities(target_class: type) -> list[str]:
    """The names of the capabilities a target class declares, in CAPABILITIES' order."""
    return [name for name, cap in CAPABILITIES.items() if issubclass(target_class, cap)]


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
