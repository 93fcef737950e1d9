"""Durable Raft state in a data directory: a write-ahead log and a snapshot file.

  wal        records: 4-byte length, 4-byte CRC-32, JSON payload, one of
               {"h": [term, vote]}            the hard state
               {"e": [[index, term, cmd]..]}  entries appended
               {"x": index}                   entries from index on dropped
  snapshot   JSON {"index", "term", "data", "members"}, replaced atomically (write, fsync, rename)

The log file is preallocated with zeros ahead of the writes (etcd does the same): an fsync
that need not also record a new file size costs a quarter less. A zero length ends the log.

`save` makes a Ready durable: it writes and fsyncs before returning, so the driver may then
send the acknowledgements that promise it. Compaction writes a new snapshot and rewrites
the log without the entries it covers. On recovery a torn or corrupt tail record (a crash in
the middle of a write) ends the log and is cut off.

With durable=False (the no-fsync bug) records are written at once but fsynced only every
`lazy_sync_interval` seconds: a kill -9 of the process loses nothing (the kernel's cache
holds the writes), but a crash of the machine, or the disk fault (nemesis/disk.py), loses
what was acknowledged since the last fsync.
"""
from __future__ import annotations

import json
import os
import struct
import zlib

from targets.raftkv.raft import Persistent, Ready, Snapshot

_HEADER = struct.Struct(">II")
PREALLOCATE = 8 << 20  # bytes of zeros added to the log file at a time


class StorageError(Exception):
    """The data directory holds something raftkv cannot recover from."""


class Storage:
    def __init__(self, data_dir: str, durable: bool = True):
        self.dir = data_dir
        self.durable = durable
        self.wal_path = os.path.join(data_dir, "wal")
        self.snapshot_path = os.path.join(data_dir, "snapshot")
        self._buffer = bytearray()
        self._fd: int | None = None
        self._offset = 0  # where the next record goes
        self._size = 0    # the file's size, zeros past _offset
        self._hard_state: tuple = (0, None)

    # ---- recovery ------------------------------------------------------------------------

    def load(self) -> Persistent:
        os.makedirs(self.dir, exist_ok=True)
        state = Persistent()
        if os.path.exists(self.snapshot_path):
            with open(self.snapshot_path, "rb") as f:
                snap = json.loads(f.read())
            state.snapshot = Snapshot(snap["index"], snap["term"], snap["data"],
                                      snap.get("members"))
        base = state.snapshot.index if state.snapshot else 0
        entries: list = []
        good_end = 0
        data = b""
        if os.path.exists(self.wal_path):
            with open(self.wal_path, "rb") as f:
                data = f.read()
        pos = 0
        while pos + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, pos)
            payload = data[pos + _HEADER.size:pos + _HEADER.size + length]
            if length == 0 or len(payload) < length or zlib.crc32(payload) != crc:
                break
            record = json.loads(payload)
            if "h" in record:
                state.term, state.vote = record["h"]
            elif "x" in record:
                del entries[max(0, record["x"] - base - 1):]
            else:
                for index, term, cmd in record["e"]:
                    if index <= base:
                        continue
                    offset = index - base - 1
                    if offset > len(entries):
                        raise StorageError(f"{self.wal_path}: entry {index} follows "
                                           f"{base + len(entries)}: a gap in the log")
                    del entries[offset:]
                    entries.append((term, cmd))
            pos += _HEADER.size + length
            good_end = pos
        state.entries = entries
        self._hard_state = (state.term, state.vote)
        self._fd = os.open(self.wal_path, os.O_WRONLY | os.O_CREAT, 0o644)
        self._offset, self._size = good_end, len(data)
        torn = len(data[good_end:].rstrip(b"\0"))
        if torn:
            # Zero the torn record, so no stale bytes past the end can ever parse.
            os.pwrite(self._fd, bytes(torn), good_end)
        os.fsync(self._fd)
        _fsync_dir(self.dir)
        return state

    # ---- writing -------------------------------------------------------------------------

    def save(self, ready: Ready) -> None:
        if ready.snapshot is not None:
            # The leader's snapshot replaces our whole log.
            self.compact(ready.snapshot, ready.hard_state, [])
        elif ready.hard_state is not None:
            self._record({"h": list(ready.hard_state)})
        if ready.truncate_from is not None:
            self._record({"x": ready.truncate_from})
        if ready.entries:
            self._record({"e": ready.entries})
        if self._buffer:
            self._write_out(fsync=self.durable)

    def compact(self, snapshot: Snapshot, hard_state: tuple | None, entries: list) -> None:
        """Persist snapshot, then rewrite the log as hard_state + entries (index, term, cmd)."""
        self.sync()
        _atomic_write(self.snapshot_path, json.dumps(
            {"index": snapshot.index, "term": snapshot.term, "data": snapshot.data,
             "members": snapshot.members}).encode())
        if hard_state is not None:
            self._hard_state = tuple(hard_state)
        records = bytearray(_frame({"h": list(self._hard_state)}))
        if entries:
            records += _frame({"e": entries})
        os.close(self._fd)
        _atomic_write(self.wal_path, bytes(records))
        self._fd = os.open(self.wal_path, os.O_WRONLY)
        self._offset = self._size = len(records)

    def sync(self) -> None:
        """Write out and fsync anything not yet durable (the no-fsync bug's lazy fsync)."""
        if self._buffer:
            self._write_out()
        elif not self.durable and self._fd is not None:
            os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None

    def _record(self, record: dict) -> None:
        if "h" in record:
            self._hard_state = tuple(record["h"])
        self._buffer += _frame(record)

    def _write_out(self, fsync: bool = True) -> None:
        data = bytes(self._buffer)
        self._buffer.clear()
        end = self._offset + len(data)
        if end > self._size:
            grow = max(PREALLOCATE, end - self._size)
            os.pwrite(self._fd, bytes(grow), self._size)
            self._size += grow
            if fsync:
                os.fsync(self._fd)  # the new size, once per PREALLOCATE bytes
        while data:
            written = os.pwrite(self._fd, data, self._offset)
            self._offset += written
            data = data[written:]
        if fsync:
            os.fdatasync(self._fd)


def _frame(record: dict) -> bytes:
    payload = json.dumps(record, separators=(",", ":")).encode()
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _atomic_write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path))


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
