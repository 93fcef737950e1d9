"""Running a whole test inside an unprivileged user namespace, so no sudo is needed.

An ordinary user cannot create network namespaces, bridges or iptables rules in the host's
namespaces, but can in namespaces of a user namespace it owns, where it is root. So
`tectonic test` re-executes itself as

    unshare --user --map-root-user --net --mount -- python -I userns.py ARGV...

and this file, run as that script (the trampoline), finishes the set-up before running ARGV:

- a private, empty tmpfs on /run, where `ip netns` keeps its namespace files (the host's
  /run is not writable from here, and must not be touched anyway);
- `lo` up in the controller's fresh network namespace;
- a new PID namespace whose init is a small reaper that runs ARGV as its child. When the
  controller dies, even by SIGKILL, init exits and the kernel kills every process in the
  PID namespace; with them go the network namespaces. Nothing can outlive the test.

Signals: SIGTERM and SIGHUP sent to the command the user started are passed on to ARGV;
SIGINT from the terminal reaches ARGV directly (it is in the foreground process group).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys

ENV_MARK = "TECTONIC_USERNS"  # set to "1" for ARGV: it runs inside the user namespace
CLONE_NEWPID = 0x20000000
PR_SET_PDEATHSIG = 1
FORWARDED = (signal.SIGTERM, signal.SIGHUP)


class UserNamespaceError(RuntimeError):
    """Unprivileged user namespaces cannot be used here; the message says what to do."""


def reexec_in_userns_if_needed(argv: list[str]) -> None:
    """Return at once when root (euid 0, also inside our namespace); otherwise replace
    this process by argv running as root inside a fresh user namespace (never returns).

    argv[0] must be runnable on its own, e.g. [sys.executable, "-m", "harness.cli", ...].
    Raises UserNamespaceError when the kernel or the host forbid user namespaces.
    """
    if os.geteuid() == 0:
        return
    if not argv:
        raise ValueError("reexec_in_userns_if_needed: empty command line")
    problem = userns_problem()
    if problem:
        raise UserNamespaceError(problem)
    sys.stdout.flush()
    sys.stderr.flush()
    command = private_host_command(argv)
    os.execv(command[0], command)


def private_host_command(argv: list[str]) -> list[str]:
    """The command line that runs argv as root in fresh user, network, mount and PID
    namespaces with a /run of their own: a host of its own, sharing only the files.
    Namespaces, iptables rules, processes and records made there are invisible outside
    and die with argv. (Root may run it too: tests use it as a private lab.)"""
    return [shutil.which("unshare") or "unshare", "--user", "--map-root-user", "--net", "--mount",
            "--propagation", "private", "--", sys.executable, "-I", os.path.abspath(__file__), *argv]


def userns_problem(proc_root: str = "/proc") -> str | None:
    """Why an unprivileged user namespace cannot be used here, or None when it can."""
    sysctls = [
        ("kernel/unprivileged_userns_clone", "0", "kernel.unprivileged_userns_clone=1",
         "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)"),
        ("user/max_user_namespaces", "0", "user.max_user_namespaces=15000",
         "user namespaces are disabled (user.max_user_namespaces = 0)"),
        ("kernel/apparmor_restrict_unprivileged_userns", "1",
         "kernel.apparmor_restrict_unprivileged_userns=0",
         "AppArmor restricts unprivileged user namespaces "
         "(kernel.apparmor_restrict_unprivileged_userns = 1)"),
    ]
    for path, bad, fix, what in sysctls:
        try:
            with open(os.path.join(proc_root, "sys", path)) as f:
                value = f.read().strip()
        except OSError:
            continue
        if value == bad:
            return f"{what}: run tectonic as root, or allow them with `sudo sysctl -w {fix}`"
    for tool, package in (("unshare", "util-linux"), ("mount", "mount"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            return f"{tool} not found: install {package} (apt-get install -y {package})"
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--net", "--mount", "true"],
                           capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        return (f"cannot create a user namespace ({probe.stderr.strip() or 'unshare failed'}): "
                f"run tectonic as root, or allow unprivileged user namespaces on this host")
    return None


def _trampoline(argv: list[str]) -> None:
    _check_call(["mount", "-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "tectonic-run", "/run"])
    os.makedirs("/run/netns", exist_ok=True)
    _check_call(["ip", "link", "set", "lo", "up"])
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWPID) != 0:
        _die(f"cannot create a PID namespace: {os.strerror(ctypes.get_errno())}")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    init = os.fork()
    if init == 0:
        _init(argv, libc)
    _forward_signals_to(init)
    _, status = os.waitpid(init, 0)
    os._exit(_exit_code(status))


def _init(argv: list[str], libc) -> None:
    """PID 1 of the test's PID namespace: run argv, reap orphans, exit with argv's code."""
    try:
        # The trampoline's death (SIGKILL) must take the whole PID namespace with it.
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        _check_call(["mount", "-t", "proc", "proc", "/proc"])
        child = os.fork()
        if child == 0:
            _exec_command(argv)
        _forward_signals_to(child)
        while True:
            pid, status = os.wait()
            if pid == child:
                os._exit(_exit_code(status))
    except BaseException as e:  # init must never return into the trampoline's code
        _die(f"init of the user namespace failed: {e}")


def _exec_command(argv: list[str]) -> None:
    for sig in (signal.SIGINT, *FORWARDED):
        signal.signal(sig, signal.SIG_DFL)
    os.environ[ENV_MARK] = "1"
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        _die(f"cannot run {argv[0]}: {e}", code=127)


def _forward_signals_to(pid: int) -> None:
    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    for sig in FORWARDED:
        signal.signal(sig, forward)


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _check_call(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        _die(f"{' '.join(argv)} failed in the user namespace: {proc.stderr.strip()}")


def _die(message: str, code: int = 255) -> None:
    print(f"tectonic: {message}", file=sys.stderr, flush=True)
    os._exit(code)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        _die("usage: userns.py COMMAND [ARG...] (run by reexec_in_userns_if_needed)", code=254)
    _trampoline(sys.argv[1:])
