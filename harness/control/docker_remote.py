"""One container's shell, through the Docker engine's API (the Remote protocol).

Pids are the container's own (its pid namespace): spawn reports them, signal sends to them,
and a target's pidfile inside the container holds them.
"""
from __future__ import annotations

import io
import os
import tarfile
import threading

from harness.protocols import ExecResult, RemoteError

# `timeout`'s exit statuses when it stopped the command (TERM, then KILL after the grace).
_TIMED_OUT = (124, 137)
_KILL_GRACE = 2
# Slack for the engine itself on top of the command's own limit, before we stop waiting.
_API_SLACK = 10.0
# An argument or variable of the kernel's exec may hold at most 128 KiB.
MAX_INPUT = 100_000

# Starts "$@" in its own session, output appended to the log, pid to the pidfile and
# stdout; sh's background job is not a group leader, so setsid does not fork: $! is it.
_SPAWN = r'''
log=$1 pidfile=$2 dir=$3; shift 3
mkdir -p -- "$(dirname -- "$log")" "$(dirname -- "$pidfile")" || exit 1
if [ -n "$dir" ]; then cd -- "$dir" || exit 1; fi
setsid "$@" >>"$log" 2>&1 </dev/null &
echo $! >"$pidfile"
echo $!
'''
# Feeds $TECTONIC_STDIN to the command's stdin (the exec API's stdin needs a hijacked
# connection; a variable is simpler and input here is small: clock offsets, configs).
_WITH_INPUT = r'printf %s "$TECTONIC_STDIN" | { unset TECTONIC_STDIN; exec "$@"; }'


class DockerRemote:
    """Conforms to harness.protocols.Remote for one container, named or by id."""

    def __init__(self, api, container: str):
        # api: a docker.APIClient (docker.DockerClient().api); thread-safe for requests.
        self.api = api
        self.container = container
        self.spawned: list[tuple[int, list[str]]] = []  # what spawn started (protocols.Remote)

    def exec(self, argv, *, timeout=30.0, check=True, input=None, env=None):
        argv = [str(a) for a in argv]
        cmd = list(argv)
        environment = dict(env or {})
        if input is not None:
            if len(input) > MAX_INPUT:
                raise RemoteError(f"{self.container}: {' '.join(argv)}: input of {len(input)} "
                                  f"characters is over the {MAX_INPUT} the docker backend passes")
            environment["TECTONIC_STDIN"] = input
            cmd = ["sh", "-c", _WITH_INPUT, "sh"] + cmd
        cmd = ["timeout", f"--kill-after={_KILL_GRACE}", f"{timeout:g}"] + cmd
        code, out, err = self._run(cmd, environment, timeout + _KILL_GRACE + _API_SLACK, argv)
        if code in _TIMED_OUT:
            raise RemoteError(f"{self.container}: {' '.join(argv)}: no answer within {timeout}s")
        if code == 127 and not err.strip():
            err = f"{argv[0]}: not found in the container"
        res = ExecResult(argv, code, out, err)
        if check and code != 0:
            raise RemoteError(f"{self.container}: {' '.join(argv)} exited {code}: "
                              f"{err.strip()[:500]}")
        return res

    def spawn(self, argv, *, log, pidfile, env=None, cwd=None):
        argv = [str(a) for a in argv]
        cmd = ["sh", "-c", _SPAWN, "sh", log, pidfile, cwd or ""] + argv
        code, out, err = self._run(cmd, dict(env or {}), 30.0 + _API_SLACK, argv)
        if code != 0 or not out.strip().isdigit():
            raise RemoteError(f"{self.container}: could not start {' '.join(argv)}: "
                              f"exit {code}: {err.strip()[:500]}")
        self.spawned.append((int(out.strip()), argv))
        return int(out.strip())

    def signal(self, pid, sig):
        res = self.exec(["kill", f"-{int(sig)}", str(int(pid))], timeout=10, check=False)
        if res.returncode != 0 and "No such process" not in res.stderr:
            raise RemoteError(f"{self.container}: kill -{int(sig)} {pid} exited "
                              f"{res.returncode}: {res.stderr.strip()[:500]}")

    def put_file(self, local, remote):
        directory, name = os.path.split(remote)
        with open(local, "rb") as f:
            data = f.read()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = os.stat(local).st_mode & 0o7777
            tar.addfile(info, io.BytesIO(data))
        self.exec(["mkdir", "-p", directory or "/"])
        self._api(lambda: self.api.put_archive(self.container, directory or "/", buf.getvalue()),
                  f"copy {local} to {remote}")

    def get_file(self, remote, local):
        def fetch():
            stream, _ = self.api.get_archive(self.container, remote)
            return b"".join(stream)
        data = self._api(fetch, f"copy {remote} from the container")
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            if member is None:
                raise RemoteError(f"{self.container}: {remote} is not a regular file")
            content = tar.extractfile(member).read()
        os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
        with open(local, "wb") as f:
            f.write(content)

    # ---- the engine ----------------------------------------------------------------------

    def _run(self, cmd: list[str], environment: dict, limit: float,
             argv: list[str]) -> tuple[int, str, str]:
        def call():
            exec_id = self.api.exec_create(self.container, cmd, environment=environment or None)
            out, err = self.api.exec_start(exec_id, demux=True)
            code = self.api.exec_inspect(exec_id)["ExitCode"]
            return code, _text(out), _text(err)
        return self._api(call, " ".join(argv), limit)

    def _api(self, call, what: str, limit: float = 60.0):
        """Run one engine call with a hard limit; engine errors become RemoteError."""
        import docker
        import requests
        box: dict = {}

        def target():
            try:
                box["value"] = call()
            except (docker.errors.DockerException, requests.RequestException, OSError,
                    tarfile.TarError) as e:
                box["error"] = e
        worker = threading.Thread(target=target, daemon=True, name=f"docker-{self.container}")
        worker.start()
        worker.join(limit)
        if worker.is_alive():
            raise RemoteError(f"{self.container}: {what}: the Docker engine did not answer "
                              f"within {limit:.0f}s")
        if "error" in box:
            raise RemoteError(f"{self.container}: {what}: {explain(box['error'])}")
        return box["value"]


def _text(data: bytes | None) -> str:
    return (data or b"").decode(errors="replace")


def explain(error: BaseException) -> str:
    """An engine error in one line: the engine's own explanation when it gave one."""
    text = str(getattr(error, "explanation", None) or error).strip()
    return text.splitlines()[0][:500] if text else type(error).__name__
