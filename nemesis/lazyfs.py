"""A FUSE filesystem that keeps file writes in memory until fsync, and can lose them.

Run as `python -m nemesis.lazyfs --backing DIR --mount DIR --control SOCKET` (the disk
fault, nemesis/disk.py, mounts one over each node's directory before the target starts).
Files live in the backing directory; a write is kept as pending (offset, bytes) for its
file, and reads see the backing bytes with the pending writes laid over them, in order.
fsync (or fdatasync) of a file writes its pending writes through to the backing file and
fsyncs that. What a power cut does to a disk with a volatile cache, Jepsen's LazyFS does
to a process; this does it too, over a Unix socket at SOCKET, one JSON line per request:

  {"do": "crash"}               forget every pending write: what was not fsynced is gone
  {"do": "crash", "torn": true} per file, keep a random prefix of its pending bytes in
                                write order (earlier writes whole, one cut short, later
                                ones gone): a disk that lost power in the middle of a write
  {"do": "pending"}             how many files and bytes are pending now

Each answers {"files": n, "bytes": b} (for a crash: what was lost). Metadata (creating,
renaming, removing files and directories) is durable at once, as on a journaling
filesystem that commits metadata before data; a renamed file's pending writes follow it.
Kernel caching is off (direct_io, zero attribute timeouts), so after a crash the target
reads exactly what survived.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import stat
import sys
import threading

import mfusepy as fuse


class Pending:
    """One file's un-fsynced changes, in order: ("w", offset, data) or ("t", length)."""

    def __init__(self, durable_size: int):
        self.ops: list[tuple] = []
        self.size = durable_size  # the file's size as its readers see it

    def write(self, offset: int, data: bytes) -> None:
        self.ops.append(("w", offset, bytes(data)))
        self.size = max(self.size, offset + len(data))

    def truncate(self, length: int) -> None:
        self.ops.append(("t", length))
        self.size = length

    def bytes(self) -> int:
        return sum(len(op[2]) for op in self.ops if op[0] == "w")

    def overlay(self, base: bytes, offset: int, size: int) -> bytes:
        """The bytes [offset, offset+size) as the pending ops leave them over base (the
        backing file's bytes from offset)."""
        size = max(0, min(size, self.size - offset))
        buf = bytearray(base[:size].ljust(size, b"\0"))
        for op in self.ops:
            if op[0] == "w":
                _, at, data = op
                lo, hi = max(at, offset), min(at + len(data), offset + size)
                if lo < hi:
                    buf[lo - offset:hi - offset] = data[lo - at:hi - at]
            else:
                cut = op[1] - offset
                if cut < size:
                    buf[max(0, cut):] = bytes(size - max(0, cut))
        return bytes(buf)

    def apply(self, fd: int, upto: int | None = None) -> None:
        """Write the ops through to fd, all of them or only the first `upto` pending bytes."""
        budget = upto
        for op in self.ops:
            if op[0] == "t":
                os.ftruncate(fd, op[1])
                continue
            _, at, data = op
            if budget is not None:
                data = data[:budget]
                budget -= len(data)
            if data:
                os.pwrite(fd, data, at)
            if budget == 0:
                return


class LazyFS(fuse.Operations):
    use_ns = True

    def __init__(self, backing: str, rng: random.Random):
        self.backing = os.path.realpath(backing)
        self.rng = rng
        self._mutex = threading.RLock()
        self.pending: dict[str, Pending] = {}

    def _path(self, path: str) -> str:
        return os.path.join(self.backing, path.lstrip("/"))

    # ---- the faults ----------------------------------------------------------------------

    def crash(self, torn: bool) -> dict:
        with self._mutex:
            lost = {"files": 0, "bytes": 0}
            for path, pending in self.pending.items():
                total = pending.bytes()
                kept = self.rng.randrange(total + 1) if torn and total else 0
                if kept:
                    fd = os.open(self._path(path), os.O_WRONLY)
                    try:
                        pending.apply(fd, upto=kept)
                    finally:
                        os.close(fd)
                if kept < total or not total:  # a lost truncate counts as a lost change
                    lost["files"] += 1
                lost["bytes"] += total - kept
            self.pending.clear()
            return lost

    def count(self) -> dict:
        with self._mutex:
            return {"files": len(self.pending),
                    "bytes": sum(p.bytes() for p in self.pending.values())}

    # ---- data ------------------------------------------------------------------------------

    def _pending(self, path: str) -> Pending:
        p = self.pending.get(path)
        if p is None:
            p = self.pending[path] = Pending(os.stat(self._path(path)).st_size)
        return p

    def write(self, path, data, offset, fh):
        with self._mutex:
            self._pending(path).write(offset, data)
        return len(data)

    def truncate(self, path, length, fh=None):
        with self._mutex:
            self._pending(path).truncate(length)
        return 0

    def read(self, path, size, offset, fh):
        with self._mutex:
            base = os.pread(fh, size, offset)
            pending = self.pending.get(path)
            return pending.overlay(base, offset, size) if pending else base

    def fsync(self, path, datasync, fh):
        with self._mutex:
            pending = self.pending.pop(path, None)
            if pending is not None:
                fd = os.open(self._path(path), os.O_WRONLY)
                try:
                    pending.apply(fd)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        return 0

    def fsyncdir(self, path, datasync, fh):
        return 0

    def flush(self, path, fh):
        return 0

    # ---- files and metadata: passed through, durable at once -------------------------------

    def getattr(self, path, fh=None):
        with self._mutex:
            st = os.lstat(self._path(path))
            attrs = {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_uid", "st_gid",
                                                  "st_size", "st_atime_ns", "st_mtime_ns",
                                                  "st_ctime_ns")}
            attrs["st_atime"], attrs["st_mtime"], attrs["st_ctime"] = (
                st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
            pending = self.pending.get(path)
            if pending is not None and stat.S_ISREG(st.st_mode):
                attrs["st_size"] = pending.size
            return attrs

    # A file handle is a read-only descriptor of the backing file: writes never reach it
    # before fsync, which opens the file for writing itself.
    def open(self, path, flags):
        fd = os.open(self._path(path), os.O_RDONLY)
        if flags & os.O_TRUNC:
            self.truncate(path, 0)
        return fd

    def create(self, path, mode, fi=None):
        with self._mutex:
            os.close(os.open(self._path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode))
            self.pending.pop(path, None)
            return os.open(self._path(path), os.O_RDONLY)

    def release(self, path, fh):
        os.close(fh)
        return 0

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def mkdir(self, path, mode):
        os.mkdir(self._path(path), mode)
        return 0

    def rmdir(self, path):
        os.rmdir(self._path(path))
        return 0

    def unlink(self, path):
        with self._mutex:
            os.unlink(self._path(path))
            self.pending.pop(path, None)
        return 0

    def rename(self, old, new):
        with self._mutex:
            os.rename(self._path(old), self._path(new))
            self.pending.pop(new, None)
            if old in self.pending:
                self.pending[new] = self.pending.pop(old)
        return 0

    def chmod(self, path, mode):
        os.chmod(self._path(path), mode)
        return 0

    def utimens(self, path, times=None):
        os.utime(self._path(path), ns=times)
        return 0

    def statfs(self, path):
        sv = os.statvfs(self._path(path))
        return {k: getattr(sv, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize",
                                            "f_favail", "f_ffree", "f_files", "f_flag",
                                            "f_frsize", "f_namemax")}


def serve_control(fs: LazyFS, path: str) -> None:
    """Answer crash/pending requests on a Unix socket at path, one connection at a time."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    while True:
        conn, _ = server.accept()
        with conn:
            try:
                request = json.loads(conn.makefile().readline())
                if request.get("do") == "crash":
                    answer = fs.crash(bool(request.get("torn")))
                elif request.get("do") == "pending":
                    answer = fs.count()
                else:
                    answer = {"error": f"unknown request {request!r}"}
            except Exception as e:  # noqa: BLE001 - answer the asker, keep serving
                answer = {"error": str(e)}
            conn.sendall((json.dumps(answer) + "\n").encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nemesis.lazyfs")
    parser.add_argument("--backing", required=True)
    parser.add_argument("--mount", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--name", default="tectonic-lazyfs", help="the mount's fsname")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    fs = LazyFS(args.backing, random.Random(args.seed))
    if os.path.exists(args.control):
        os.unlink(args.control)
    threading.Thread(target=serve_control, args=(fs, args.control), daemon=True).start()
    fuse.FUSE(fs, args.mount, foreground=True, fsname=args.name, direct_io=True,
              attr_timeout=0, entry_timeout=0, negative_timeout=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
