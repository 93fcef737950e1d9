"""The shell command lines the SSH backend sends, built from argument vectors.

An SSH server hands the command to the login user's shell as one string, so every piece of
input is quoted with shlex and only the fixed templates below are shell code. Kept apart
from the connection so the quoting can be tested without a server.
"""
from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Runs as `sh -c SPAWN_SCRIPT tectonic-spawn PIDFILE CWD ARGV...` under `setsid -f`, with
# stdout/stderr already appended to the log: the shell writes its own pid, then becomes
# argv, so the pid in the file is the daemon's. When it cannot start it writes "-" there,
# so the caller stops waiting at once.
SPAWN_SCRIPT = 'cd "$2" || { echo - > "$1"; exit 1; }; echo $$ > "$1" || exit 1; shift 2; exec "$@"'
# How long the spawning command waits for the daemon to write its pidfile.
PIDFILE_WAIT_STEPS, PIDFILE_WAIT_STEP = 100, 0.05

# Kills every process whose environment carries the marker spawn gave it (children inherit
# it), so a cluster can clean up after a target that never got to its teardown.
KILL_MARKED_SCRIPT = ('for f in /proc/[0-9]*/environ; do '
                      'if grep -qzx -- "$1" "$f" 2>/dev/null; then '
                      'p=${f#/proc/}; kill -9 "${p%/environ}" 2>/dev/null; fi; done; true')


@dataclass(frozen=True)
class HostSpec:
    """One host as the user named it: `host`, `user@host`, `host:port`, `[v6]:port`."""
    user: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"


def parse_host(text: str, default_user: str = "root", default_port: int = 22) -> HostSpec:
    """`user@host:port` with the user and port optional. Raises ValueError naming the text."""
    if not isinstance(text, str) or not text.strip() or any(c.isspace() for c in text.strip()):
        raise ValueError(f"ssh host {text!r}: expected host, user@host or user@host:port")
    rest = text.strip()
    user = default_user
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
        if not user:
            raise ValueError(f"ssh host {text!r}: empty user before '@'")
    port: int | str = default_port
    if rest.startswith("["):  # [ipv6] or [ipv6]:port
        host, sep, tail = rest[1:].partition("]")
        if not sep or (tail and not tail.startswith(":")):
            raise ValueError(f"ssh host {text!r}: write an IPv6 address as [addr] or [addr]:port")
        port = tail[1:] if tail else port
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    else:
        host = rest  # a name, an IPv4 address, or a bare IPv6 address
    if not host:
        raise ValueError(f"ssh host {text!r}: no host name")
    try:
        port = int(port)
    except ValueError:
        raise ValueError(f"ssh host {text!r}: port {port!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"ssh host {text!r}: port {port} is out of range")
    return HostSpec(user, host, port)


def with_env(argv: list[str], env: dict[str, str] | None) -> list[str]:
    """argv run with extra environment variables, through env(1): sudo drops the caller's
    environment, and a variable set this way survives it."""
    if not argv:
        raise ValueError("an empty argv runs nothing")
    if not env:
        return list(argv)
    for name in env:
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise ValueError(f"environment variable name {name!r} is not a valid name")
    return ["env", *(f"{k}={v}" for k, v in env.items()), *argv]


def privileged(argv: list[str], sudo: bool) -> list[str]:
    """argv as root: through `sudo -n` (never prompting: no terminal is there to answer)."""
    return ["sudo", "-n", "--", *argv] if sudo else list(argv)


def exec_command(argv: list[str], env: dict[str, str] | None, sudo: bool) -> str:
    """The command line that runs argv to completion."""
    return shlex.join(privileged(with_env(argv, env), sudo))


def spawn_command(argv: list[str], *, log: str, pidfile: str, cwd: str | None,
                  env: dict[str, str] | None, sudo: bool) -> str:
    """The command line that starts argv as a daemon in a session of its own (setsid -f,
    so it never holds the SSH channel), stdin from /dev/null, stdout+stderr appended to
    log, its pid in pidfile; it waits for the pidfile and prints the pid."""
    q = shlex.quote
    daemon = shlex.join(["setsid", "-f", "sh", "-c", SPAWN_SCRIPT, "tectonic-spawn",
                         pidfile, cwd or ".", *with_env(argv, env)])
    dirs = sorted({posixpath.dirname(log) or ".", posixpath.dirname(pidfile) or "."})
    script = (f"mkdir -p -- {' '.join(q(d) for d in dirs)} && rm -f -- {q(pidfile)} && "
              f"{daemon} < /dev/null >> {q(log)} 2>&1 && "
              f"i=0; while [ ! -s {q(pidfile)} ] && [ $i -lt {PIDFILE_WAIT_STEPS} ]; do "
              f"sleep {PIDFILE_WAIT_STEP}; i=$((i+1)); done; cat -- {q(pidfile)}")
    return shlex.join(privileged(["sh", "-c", script], sudo))


def signal_command(pid: int, sig: int, sudo: bool) -> str:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"pid must be a positive integer, got {pid!r}")
    # LC_ALL=C: "No such process" is matched to tell a gone pid from a real failure.
    return shlex.join(privileged(["env", "LC_ALL=C", "kill", f"-{int(sig)}", str(pid)], sudo))


def kill_marked_command(marker: str, sudo: bool) -> str:
    return shlex.join(privileged(["sh", "-c", KILL_MARKED_SCRIPT, "tectonic-kill", marker], sudo))
