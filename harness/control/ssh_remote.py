"""SSHRemote: one host's shell over SSH (paramiko), conforming to harness.protocols.Remote.

One connection per host, shared by every thread (paramiko multiplexes channels over it);
a connection found dead -- the host restarted, a keepalive went unanswered -- is opened
again before the next command. Every command has a deadline; a command that misses it is
abandoned and raises RemoteError, it never hangs the test.
"""
from __future__ import annotations

import logging
import os
import posixpath
import secrets
import select
import shlex
import socket
import threading
import time

from harness.protocols import ExecResult, RemoteError

from .ssh_commands import (HostSpec, exec_command, kill_marked_command, privileged,
                           signal_command, spawn_command)

log = logging.getLogger("tectonic.control")

CONNECT_TIMEOUT = 10.0
KEEPALIVE_INTERVAL = 5      # seconds: a dead peer is noticed within a few of these
FILE_TIMEOUT = 120.0        # per SFTP transfer
SPAWN_MARKER_VAR = "TECTONIC_SPAWN"
SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"


class SSHConnectError(RemoteError):
    """A host could not be reached or refused us; the message is one line for the user."""


class SSHRemote:
    """A Remote on `spec.host`, logged in as `spec.user`.

    Host keys are checked against known_hosts (the user's ~/.ssh/known_hosts and
    /etc/ssh/ssh_known_hosts, or the file `known_hosts`) unless insecure_host_keys, which
    accepts any key and says so in the log. sudo: commands run through `sudo -n` (default:
    when the user is not root). Files are copied with SFTP as the login user: with sudo,
    put_file writes where that user may write (the node's directory is made so).
    Every process spawn starts carries `TECTONIC_SPAWN=<marker>` in its environment, which
    kill_spawned finds them by.
    """

    def __init__(self, spec: HostSpec, *, name: str | None = None, key_file: str | None = None,
                 known_hosts: str | None = None, insecure_host_keys: bool = False,
                 sudo: bool | None = None, connect_timeout: float = CONNECT_TIMEOUT,
                 marker: str | None = None):
        self.spec = spec
        self.name = name or spec.host
        self.key_file = os.path.expanduser(key_file) if key_file else None
        self.known_hosts = os.path.expanduser(known_hosts) if known_hosts else None
        self.insecure_host_keys = bool(insecure_host_keys)
        self.sudo = spec.user != "root" if sudo is None else bool(sudo)
        self.connect_timeout = connect_timeout
        self.marker = marker or f"tectonic-{secrets.token_hex(4)}"
        self.spawned: list[tuple[int, list[str]]] = []  # what spawn started (protocols.Remote)
        self._client = None
        self._sftp = None
        self._lock = threading.Lock()       # guards connecting
        self._sftp_lock = threading.Lock()  # SFTP requests go one at a time

    def __repr__(self) -> str:
        return f"SSHRemote({self.name}: {self.spec})"

    # ---- connection ------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the connection now (create() does, on all hosts at once), raising
        SSHConnectError with one line saying what is wrong."""
        with self._lock:
            if not self._alive():
                self._open()

    @property
    def peer_address(self) -> str:
        """The address the connection reached: the one the controller reaches the host at."""
        self.connect()
        return self._client.get_transport().getpeername()[0]

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _alive(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def _open(self) -> None:
        import paramiko
        self._drop()
        client = paramiko.SSHClient()
        if self.insecure_host_keys:
            log.warning("ssh %s: host key NOT checked (--insecure-host-keys): anyone between "
                        "here and %s can impersonate it", self.name, self.spec.host)
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        else:
            try:
                if self.known_hosts:
                    client.load_host_keys(self.known_hosts)
                else:
                    client.load_system_host_keys()
                    if os.path.exists(SYSTEM_KNOWN_HOSTS):
                        client.load_system_host_keys(SYSTEM_KNOWN_HOSTS)
            except OSError as e:
                raise SSHConnectError(f"ssh {self.name}: cannot read known_hosts "
                                      f"{self.known_hosts or '~/.ssh/known_hosts'}: {e}") from None
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        where = f"{self.spec} ({self.name})"
        try:
            client.connect(self.spec.host, port=self.spec.port, username=self.spec.user,
                           key_filename=self.key_file, timeout=self.connect_timeout,
                           banner_timeout=self.connect_timeout, auth_timeout=self.connect_timeout,
                           allow_agent=self.key_file is None, look_for_keys=self.key_file is None)
        except paramiko.BadHostKeyException as e:
            client.close()
            raise SSHConnectError(
                f"ssh {where}: host key does not match known_hosts (got {e.key.get_name()} "
                f"{e.key.get_fingerprint().hex()}): the host was reinstalled, or someone is in "
                f"between; check it, then fix known_hosts") from None
        except paramiko.AuthenticationException as e:
            client.close()
            raise SSHConnectError(f"ssh {where}: login refused ({e}): check the user "
                                  f"(--ssh-user) and key (--ssh-key, or the agent)") from None
        except paramiko.SSHException as e:
            client.close()
            if "not found in known_hosts" in str(e):
                raise SSHConnectError(
                    f"ssh {where}: host key unknown (not in "
                    f"{self.known_hosts or '~/.ssh/known_hosts'}): verify it and add it "
                    f"(ssh-keyscan -p {self.spec.port} {self.spec.host}), or pass "
                    f"--insecure-host-keys") from None
            raise SSHConnectError(f"ssh {where}: {e}") from None
        except (OSError, EOFError) as e:
            client.close()
            if isinstance(e, (socket.timeout, TimeoutError)):
                reason = f"no answer within {self.connect_timeout:g}s"
            elif isinstance(e, paramiko.ssh_exception.NoValidConnectionsError):
                # Its own message lists addresses; the reasons are what the user can act on.
                reason = "; ".join(sorted({err.strerror or str(err) for err in e.errors.values()}))
            else:
                reason = e.strerror or str(e) or type(e).__name__
            raise SSHConnectError(f"ssh {where}: cannot reach the host: {reason}") from None
        client.get_transport().set_keepalive(KEEPALIVE_INTERVAL)
        self._client = client

    def _drop(self) -> None:
        for thing in (self._sftp, self._client):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone either way
                    pass
        self._sftp = self._client = None

    def _transport(self):
        """The live transport, reconnecting when the connection died."""
        with self._lock:
            if not self._alive():
                if self._client is not None:
                    log.warning("ssh %s: connection lost; reconnecting", self.name)
                self._open()
            return self._client.get_transport()

    def _forget(self, transport) -> None:
        with self._lock:
            if self._client is not None and self._client.get_transport() is transport:
                self._drop()

    def _channel(self, timeout: float):
        """A new session channel; reconnects once when the connection turns out dead."""
        import paramiko
        for attempt in (1, 2):
            transport = self._transport()
            try:
                return transport.open_session(timeout=min(timeout, self.connect_timeout))
            except (paramiko.SSHException, EOFError, OSError) as e:
                self._forget(transport)
                if attempt == 2:
                    raise RemoteError(f"ssh {self.name}: cannot open a channel: {e}") from None

    # ---- Remote ----------------------------------------------------------------------------

    def exec(self, argv, *, timeout=30.0, check=True, input=None, env=None):
        command = exec_command(list(argv), env, self.sudo)
        rc, out, err = self.run_command(command, timeout=timeout,
                                        input=input.encode() if input is not None else None)
        res = ExecResult(list(argv), rc, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and rc != 0:
            raise RemoteError(f"{self.name}: {' '.join(argv)} exited {rc}: {res.stderr.strip()[:500]}")
        return res

    def spawn(self, argv, *, log, pidfile, env=None, cwd=None):
        env = {**(env or {}), SPAWN_MARKER_VAR: self.marker}
        command = spawn_command(list(argv), log=log, pidfile=pidfile, cwd=cwd, env=env,
                                sudo=self.sudo)
        rc, out, err = self.run_command(command, timeout=30.0)
        text = out.decode(errors="replace").strip()
        if rc != 0 or not text.isdigit():
            tail = self.exec(["tail", "-n", "5", log], check=False).stdout.strip()
            raise RemoteError(f"{self.name}: {argv[0]} did not start "
                              f"({err.decode(errors='replace').strip() or 'no pid written'}); "
                              f"{log} ends: {tail[-500:] or '(empty)'}")
        self.spawned.append((int(text), list(argv)))
        return int(text)

    def signal(self, pid, sig):
        rc, _, err = self.run_command(signal_command(pid, sig, self.sudo), timeout=10.0)
        if rc != 0 and b"No such process" not in err:
            raise RemoteError(f"{self.name}: kill -{int(sig)} {pid} failed: "
                              f"{err.decode(errors='replace').strip()}")

    def put_file(self, local, remote):
        self.exec_unprivileged(["mkdir", "-p", posixpath.dirname(remote) or "."])
        self._with_sftp(lambda sftp: sftp.put(local, remote), f"put {local} to {remote}")

    def get_file(self, remote, local):
        os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
        self._with_sftp(lambda sftp: sftp.get(remote, local), f"get {remote}")

    # ---- beyond the protocol -----------------------------------------------------------------

    def exec_unprivileged(self, argv: list[str], *, timeout: float = 30.0) -> ExecResult:
        """argv as the login user even when sudo is on: for the files SFTP must reach."""
        rc, out, err = self.run_command(exec_command(list(argv), None, sudo=False), timeout=timeout)
        res = ExecResult(list(argv), rc, out.decode(errors="replace"), err.decode(errors="replace"))
        if rc != 0:
            raise RemoteError(f"{self.name}: {' '.join(argv)} exited {rc}: {res.stderr.strip()[:500]}")
        return res

    def kill_spawned(self) -> None:
        """SIGKILL every process spawn started on this host (and their children)."""
        self.run_command(kill_marked_command(f"{SPAWN_MARKER_VAR}={self.marker}", self.sudo),
                         timeout=30.0)

    def check_sudo(self) -> None:
        if self.sudo:
            rc, _, err = self.run_command(shlex.join(privileged(["true"], True)), timeout=15.0)
            if rc != 0:
                raise SSHConnectError(f"ssh {self.spec} ({self.name}): user {self.spec.user} "
                                      f"cannot run sudo without a password "
                                      f"({err.decode(errors='replace').strip()[:200]}): "
                                      f"allow it in sudoers (NOPASSWD), or log in as root")

    def run_command(self, command: str, *, timeout: float,
                    input: bytes | None = None) -> tuple[int, bytes, bytes]:
        """Run one command line; (exit status, stdout, stderr). Raises RemoteError when
        the host cannot be reached or the deadline passes."""
        deadline = time.monotonic() + timeout
        chan = self._channel(timeout)
        out, err = bytearray(), bytearray()
        try:
            chan.exec_command(command)
            if input is not None:
                chan.sendall(input)
            chan.shutdown_write()
            while True:
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    return chan.recv_exit_status(), bytes(out), bytes(err)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RemoteError(f"{self.name}: no answer within {timeout}s to: "
                                      f"{command[:200]}")
                # The channel's fileno wakes on stdout and on close; stderr is polled.
                select.select([chan], [], [], min(left, 0.05))
        except RemoteError:
            raise
        except Exception as e:  # noqa: BLE001 - paramiko raises many kinds; all mean the same here
            raise RemoteError(f"{self.name}: connection failed during {command[:200]}: "
                              f"{type(e).__name__}: {e}") from None
        finally:
            chan.close()

    def _with_sftp(self, action, what: str) -> None:
        with self._sftp_lock:
            for attempt in (1, 2):
                try:
                    if self._sftp is None or self._sftp.get_channel().closed:
                        self._sftp = self._transport().open_sftp_client()
                        self._sftp.get_channel().settimeout(FILE_TIMEOUT)
                    action(self._sftp)
                    return
                except OSError as e:
                    if isinstance(e, (FileNotFoundError, PermissionError)) or attempt == 2:
                        raise RemoteError(f"{self.name}: sftp {what}: {e}") from None
                    self._sftp = None
                except Exception as e:  # noqa: BLE001 - paramiko's own errors: retried once
                    if attempt == 2:
                        raise RemoteError(f"{self.name}: sftp {what}: {type(e).__name__}: {e}") from None
                    self._sftp = None
