"""The process target's block: how to start one node, tell it is healthy, and talk to it.

A spec with `target: process` describes the system in `target_opts` (YAML, no Python):

  command:    [./my-server, --id, "{node}", --listen, "{address}:{port}", --peers, "{peers}",
               --data-dir, "{data_dir}"]        (a list, or one string split like a shell)
  port:       8000          the port each node's server listens on (default 8000)
  health:     tcp           healthy once {address}:{port} accepts a connection (the default),
                            or a URL such as "http://{address}:{port}/health" answering 2xx
  persistent: true          the data dir survives a kill (false: it is emptied at every start)
  protocol:   http-kv       how clients talk to it: http-kv (README) or maelstrom
  env:        {KEY: value}  extra environment for the command

Placeholders: {node} (the node's name), {address}, {port}, {peers} (every node as
name=address:port, comma-separated, this one included), {data_dir} (this node's private
directory, created before the start). `{{` and `}}` are literal braces.

`parse_block` is the whole contract: a malformed block raises SpecError naming the field,
before any cluster exists; the result is plain data, stored in the run's spec.
"""
from __future__ import annotations

import os
import shlex
import string
from dataclasses import dataclass, field

from core.errors import SpecError

PLACEHOLDERS = ("node", "address", "port", "peers", "data_dir")
PROTOCOLS = ("http-kv", "maelstrom")
FIELDS = ("command", "port", "health", "persistent", "protocol", "env")
# What each client protocol can run: tectonic workload names (Maelstrom's names alias them).
WORKLOADS = {"http-kv": ("register", "lin-kv"),
             "maelstrom": ("register", "lin-kv", "list-append", "txn-list-append")}


@dataclass
class ProcessConfig:
    command: list[str]
    port: int = 8000
    health: str = "tcp"
    persistent: bool = True
    protocol: str = "http-kv"
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, values: dict[str, str]) -> list[str]:
        """The command with the node's placeholders filled in."""
        return [part.format(**values) for part in self.command]

    def health_url(self, values: dict[str, str]) -> str | None:
        return None if self.health == "tcp" else self.health.format(**values)


def parse_block(opts: dict, where: str) -> ProcessConfig:
    """Check a process block (target_opts) and return it as a ProcessConfig."""
    if not isinstance(opts, dict):
        raise SpecError(f"{at(where)}target_opts must be a mapping, got {opts!r}")
    here = f"{at(where)}target_opts"
    unknown = sorted(set(opts) - set(FIELDS))
    if unknown:
        raise SpecError(f"{here}.{unknown[0]}: unknown field (known: {', '.join(FIELDS)})")
    if opts.get("command") is None:
        raise SpecError(f"{here}.command: missing: how to start one node, e.g. "
                        "[./my-server, --listen, '{address}:{port}']")
    command = opts["command"]
    if isinstance(command, str):
        try:
            command = shlex.split(command)
        except ValueError as e:
            raise SpecError(f"{here}.command: cannot split {opts['command']!r}: {e}") from None
    if not isinstance(command, list) or not command or \
            not all(isinstance(p, (str, int, float)) and not isinstance(p, bool) for p in command):
        raise SpecError(f"{here}.command: must be a non-empty list of words, got {opts['command']!r}")
    command = [str(p) for p in command]
    for part in command:
        _check_placeholders(part, f"{here}.command")
    port = opts.get("port", 8000)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise SpecError(f"{here}.port: must be a port number 1-65535, got {port!r}")
    health = opts.get("health", "tcp")
    if not isinstance(health, str) or not (health == "tcp" or health.startswith("http://")):
        raise SpecError(f"{here}.health: must be tcp or an http:// URL, got {health!r}")
    _check_placeholders(health, f"{here}.health")
    persistent = opts.get("persistent", True)
    if not isinstance(persistent, bool):
        raise SpecError(f"{here}.persistent: must be true or false, got {persistent!r}")
    protocol = opts.get("protocol", "http-kv")
    if protocol not in PROTOCOLS:
        raise SpecError(f"{here}.protocol: must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    env = opts.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float))
                                            and not isinstance(v, bool) for k, v in env.items()):
        raise SpecError(f"{here}.env: must map names to strings, got {env!r}")
    return ProcessConfig(_absolute(command), port, health, persistent, protocol,
                         {k: str(v) for k, v in env.items()})


def check_workload(config: ProcessConfig, workload: str, where: str) -> None:
    allowed = WORKLOADS[config.protocol]
    if workload not in allowed:
        raise SpecError(f"{at(where)}workload {workload!r} cannot run on a {config.protocol} "
                        f"process (it can run: {', '.join(allowed)})")


def as_opts(config: ProcessConfig) -> dict:
    """The block as the resolved spec stores it (relative paths made absolute)."""
    return {"command": config.command, "port": config.port, "health": config.health,
            "persistent": config.persistent, "protocol": config.protocol, "env": config.env}


def at(where: str) -> str:
    """The prefix naming where an error is ("" when the caller adds it)."""
    return f"{where}: " if where else ""


def _check_placeholders(text: str, where: str) -> None:
    try:
        names = [name for _, name, spec, conv in string.Formatter().parse(text) if name is not None]
    except ValueError as e:
        raise SpecError(f"{where}: {text!r}: {e} (write {{{{ and }}}} for literal braces)") from None
    for name in names:
        if name not in PLACEHOLDERS:
            raise SpecError(f"{where}: unknown placeholder {{{name}}} in {text!r} "
                            f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})")


def _absolute(command: list[str]) -> list[str]:
    """A relative program path (./my-node) means the directory tectonic runs in: the node
    itself runs in its own directory, so the path is made absolute now."""
    program = command[0]
    if "/" in program and not os.path.isabs(program) and "{" not in program:
        program = os.path.abspath(program)
    return [program, *command[1:]]
