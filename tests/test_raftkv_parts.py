"""raftkv's parts without a cluster: storage, state machine, client mapping and errors."""
import os
import socket

import pytest

from harness.protocols import HostRemote, Node
from targets.raftkv.client import RaftKVClient, ops_for
from targets.raftkv.raft import Ready, Snapshot
from targets.raftkv.statemachine import KVStore, TxnAborted, validate
from targets.raftkv.storage import Storage


def _save(storage, **fields):
    storage.save(Ready(**fields))


def test_storage_recovers_hard_state_entries_and_truncations(tmp_path):
    s = Storage(str(tmp_path))
    assert s.load().term == 0
    _save(s, hard_state=(3, "n2"), entries=[(1, 1, "a"), (2, 1, "b"), (3, 2, "c")])
    _save(s, truncate_from=2, entries=[(2, 3, "B")])
    s.close()
    state = Storage(str(tmp_path)).load()
    assert (state.term, state.vote) == (3, "n2")
    assert state.entries == [(1, "a"), (3, "B")]


def test_storage_cuts_off_a_torn_tail(tmp_path):
    s = Storage(str(tmp_path))
    s.load()
    _save(s, hard_state=(1, None), entries=[(1, 1, "a")])
    s.close()
    wal = os.path.join(tmp_path, "wal")
    with open(wal, "r+b") as f:
        end = len(f.read().rstrip(b"\0"))
        f.seek(end)
        f.write(b"\x00\x00\x00\x30\x12\x34\x56")  # a header whose body never made it
    again = Storage(str(tmp_path))
    assert again.load().entries == [(1, "a")]
    _save(again, entries=[(2, 1, "b")])  # goes where the torn record was
    again.close()
    assert Storage(str(tmp_path)).load().entries == [(1, "a"), (1, "b")]


def test_storage_compaction_keeps_the_snapshot_and_the_rest(tmp_path):
    s = Storage(str(tmp_path))
    s.load()
    _save(s, hard_state=(2, "n1"), entries=[(i, 1, f"e{i}") for i in range(1, 6)])
    s.compact(Snapshot(3, 1, [["k", 3]]), None, [(4, 1, "e4"), (5, 1, "e5")])
    _save(s, entries=[(6, 2, "e6")])
    s.close()
    state = Storage(str(tmp_path)).load()
    assert state.snapshot == Snapshot(3, 1, [["k", 3]])
    assert (state.term, state.vote) == (2, "n1")
    assert state.entries == [(1, "e4"), (1, "e5"), (2, "e6")]


def test_no_fsync_storage_writes_at_once_and_fsyncs_only_on_sync(tmp_path, monkeypatch):
    s = Storage(str(tmp_path), durable=False)
    s.load()
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    monkeypatch.setattr(os, "fdatasync", lambda fd: synced.append(fd))
    _save(s, hard_state=(2, "n3"), entries=[(1, 2, "unsynced")])
    assert synced == []  # acknowledged without an fsync: the bug
    # The file holds it (a kill -9 of the process loses nothing; a lost un-fsynced write,
    # tests/test_disk_faults.py, does).
    state = Storage(str(tmp_path)).load()
    assert (state.term, state.vote) == (2, "n3")
    assert state.entries == [(2, "unsynced")]
    synced.clear()
    s.sync()
    assert synced  # the lazy fsync


def test_transactions_are_atomic():
    kv = KVStore()
    assert kv.apply([["w", 1, 5], ["append", "l", 1], ["r", 1, None], ["rl", "l", None]]) == \
        [["w", 1, 5], ["append", "l", 1], ["r", 1, 5], ["rl", "l", [1]]]
    with pytest.raises(TxnAborted, match="cas-mismatch"):
        kv.apply([["append", "l", 2], ["w", 1, 6], ["cas", 1, 5, 7]])
    assert kv.read([["r", 1, None], ["r", "l", None]]) == [["r", 1, 5], ["r", "l", [1]]]
    with pytest.raises(TxnAborted, match="not-a-list"):
        kv.apply([["append", 1, 3]])
    assert kv.apply([["cas", 1, 5, 8], ["r", 1, None]]) == [["cas", 1, 5, 8], ["r", 1, 8]]


def test_int_and_string_keys_stay_apart_through_a_snapshot():
    kv = KVStore()
    kv.apply([["w", 3, 1], ["w", "3", 2]])
    copy = KVStore()
    copy.restore(kv.snapshot())
    assert copy.read([["r", 3, None], ["r", "3", None]]) == [["r", 3, 1], ["r", "3", 2]]


@pytest.mark.parametrize("ops, problem", [
    ([], "non-empty"), ([["x", 1, 2]], "bad micro-op"), ([["w", 1]], "needs 3"),
    ([["w", 1.5, 2]], "must be an int or a string"), ("w", "non-empty")])
def test_bad_transactions_are_refused(ops, problem):
    with pytest.raises(ValueError, match=problem):
        validate(ops)


def test_ops_map_onto_transactions():
    assert ops_for({"f": "cas", "value": [1, [2, 3]]}) == [["cas", 1, 2, 3]]
    assert ops_for({"f": "add", "value": ["s", 4]}) == [["append", "s", 4]]
    assert ops_for({"f": "read-list", "value": ["s", None]}) == [["rl", "s", None]]
    assert ops_for({"f": "txn", "value": [["r", 1, None]]}) == [["r", 1, None]]
    with pytest.raises(ValueError, match="cannot run op f='inc'"):
        ops_for({"f": "inc", "value": [1, 1]})


def _client(port):
    client = RaftKVClient(port, connect_timeout=0.5)
    client.open(Node("n1", "127.0.0.1", HostRemote(), "/nonexistent"))
    return client


def test_refused_connection_is_a_certain_failure():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the client connects
    done = _client(port).invoke({"f": "write", "value": [1, 1]}, 1.0)
    assert done["type"] == "fail" and "connect" in done["error"]


def test_silence_after_sending_is_uncertain():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client = _client(server.getsockname()[1])
        done = client.invoke({"f": "write", "value": [1, 1]}, 0.3)
        assert done["type"] == "info" and done["error"] == "timeout"
        client.close()
