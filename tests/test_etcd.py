"""The etcd client against a fake v3 JSON gateway on 127.0.0.1: what each answer (or its
absence) means for an op's outcome, and how values travel. No etcd needed; fast."""
from __future__ import annotations

import base64
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness import generator as gen
from harness.protocols import Node
from core.errors import SpecError
from targets.etcd import EtcdTarget
from targets.etcd.client import EtcdClient
from targets.etcd.gateway import classify, prefix_end
from targets.etcd.txn import plan, run_against

TIMEOUT = 0.3


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


class FakeGateway:
    """Answers each POST with `respond(path, body)`: (status, json body), HANG (never
    answer), or DROP (read the request, close the connection without a word)."""

    HANG, DROP = "hang", "drop"

    def __init__(self, respond):
        self.respond = respond
        self.requests: list[tuple[str, dict]] = []
        self.released = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((self.path, body))
                answer = fake.respond(self.path, body)
                if answer == FakeGateway.HANG:
                    fake.released.wait(5)
                    self.close_connection = True
                    return
                if answer == FakeGateway.DROP:
                    self.close_connection = True
                    return
                status, payload = answer
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01},
                         daemon=True).start()

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    def stop(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway():
    made = []

    def make(respond):
        fake = FakeGateway(respond)
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.stop()


def client_for(port: int, **kw) -> EtcdClient:
    client = EtcdClient(port, **kw)
    client.open(Node("n1", "127.0.0.1", None, "/nonexistent"))
    return client


def header(**extra):
    return {"header": {"cluster_id": "1", "member_id": "2", "revision": "9", "raft_term": "3"}, **extra}


def kv(key: str, value: str, mod: int):
    return {"key": b64(key), "value": b64(value), "create_revision": "2",
            "mod_revision": str(mod), "version": "1"}


def invoke(client, f, value):
    return client.invoke({"f": f, "value": value}, TIMEOUT)


# ---- outcomes -----------------------------------------------------------------------------

def test_a_refused_connection_is_a_certain_failure():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here once the socket is closed
    done = invoke(client_for(port), "write", [1, 2])
    assert done["type"] == "fail" and "connect" in done["error"], done


def test_no_answer_after_sending_is_info(gateway):
    fake = gateway(lambda path, body: FakeGateway.HANG)
    done = invoke(client_for(fake.port), "write", [1, 2])
    assert done == {"type": "info", "value": [1, 2], "error": "timeout"}


def test_connection_closed_after_sending_is_info(gateway):
    fake = gateway(lambda path, body: FakeGateway.DROP)
    done = invoke(client_for(fake.port), "cas", [1, [2, 3]])
    assert done["type"] == "info" and "after sending" in done["error"], done


@pytest.mark.parametrize("status,message,outcome", [
    (503, "etcdserver: request timed out", "info"),
    (503, "etcdserver: leader changed", "info"),
    (500, "etcdserver: request timed out, possibly due to previous leader failure", "info"),
    (500, "some internal error", "info"),
    (504, "context deadline exceeded", "info"),
    (400, "etcdserver: duplicate key given in txn request", "fail"),
    (404, "etcdserver: requested lease not found", "fail"),
    (500, "etcdserver: requested lease not found", "fail"),  # a lock on a dead lease
    (429, "etcdserver: too many requests", "fail"),
])
def test_error_answers_are_classified(gateway, status, message, outcome):
    fake = gateway(lambda path, body: (status, {"error": message, "message": message, "code": 14}))
    done = invoke(client_for(fake.port), "write", [1, 2])
    assert done["type"] == outcome and message in done["error"], done
    assert classify(status, message) == outcome


def test_a_connection_the_member_closed_while_idle_is_replaced_before_sending(gateway):
    # The fake closes the connection after answering, without saying so: the client must
    # notice before reusing it, or the next op would end uncertain for nothing.
    fake = gateway(lambda path, body: (200, header()))
    handler = fake.server.RequestHandlerClass
    answer = handler.do_POST
    closed = threading.Event()

    def answer_then_close(self):
        answer(self)
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_WR)
        self.close_connection = True
        closed.set()

    handler.do_POST = answer_then_close
    client = client_for(fake.port)
    assert invoke(client, "write", [1, 2])["type"] == "ok"
    assert closed.wait(5)
    assert invoke(client, "write", [1, 3])["type"] == "ok"
    assert len(fake.requests) == 2


# ---- registers ----------------------------------------------------------------------------

def test_read_decodes_base64_json_values_and_string_numbers(gateway):
    fake = gateway(lambda path, body: (200, header(kvs=[kv("k/7", "3", 12)], count="1")))
    assert invoke(client_for(fake.port), "read", [7, None]) == {"type": "ok", "value": [7, 3]}
    path, body = fake.requests[0]
    assert path == "/v3/kv/range"
    assert unb64(body["key"]) == "k/7" and body["serializable"] is False


def test_a_missing_key_reads_as_none(gateway):
    fake = gateway(lambda path, body: (200, header()))  # no kvs, no count: zero values are left out
    assert invoke(client_for(fake.port), "read", [7, None]) == {"type": "ok", "value": [7, None]}


def test_serializable_reads_ask_for_local_answers(gateway):
    fake = gateway(lambda path, body: (200, header()))
    invoke(client_for(fake.port, serializable=True), "read", [7, None])
    assert fake.requests[0][1]["serializable"] is True


def test_write_puts_json_text(gateway):
    fake = gateway(lambda path, body: (200, header()))
    assert invoke(client_for(fake.port), "write", ["x", [1, 2]])["type"] == "ok"
    path, body = fake.requests[0]
    assert path == "/v3/kv/put" and unb64(body["key"]) == "k/x" and json.loads(unb64(body["value"])) == [1, 2]


def test_cas_whose_compare_failed_is_a_cas_mismatch(gateway):
    # etcd leaves `succeeded` out when it is false; the failure branch's range answers.
    fake = gateway(lambda path, body: (200, header(responses=[
        {"response_range": {"header": {"revision": "9"}, "kvs": [kv("k/1", "4", 8)], "count": "1"}}])))
    done = invoke(client_for(fake.port), "cas", [1, [2, 3]])
    assert done == {"type": "fail", "value": [1, [2, 3]], "error": "cas-mismatch"}
    path, body = fake.requests[0]
    assert path == "/v3/kv/txn"
    assert body["compare"] == [{"key": b64("k/1"), "target": "VALUE", "result": "EQUAL", "value": b64("2")}]
    assert unb64(body["success"][0]["request_put"]["value"]) == "3"
    # A range in the failure branch: the txn is not read-only-and-local even when it fails.
    assert body["failure"] == [{"request_range": {"key": b64("k/1")}}]


def test_cas_that_succeeded_is_ok(gateway):
    fake = gateway(lambda path, body: (200, header(succeeded=True, responses=[{"response_put": {}}])))
    assert invoke(client_for(fake.port), "cas", [1, [2, 3]]) == {"type": "ok", "value": [1, [2, 3]]}


# ---- sets ---------------------------------------------------------------------------------

def test_set_is_one_key_per_element_read_by_prefix(gateway):
    fake = gateway(lambda path, body: (200, header(kvs=[kv("s/0/1", "1", 3), kv("s/0/10", "10", 5)])))
    client = client_for(fake.port)
    assert invoke(client, "add", [0, 10])["type"] == "ok"
    assert invoke(client, "read-list", [0, None]) == {"type": "ok", "value": [0, [1, 10]]}
    (_, add), (_, read) = fake.requests
    assert unb64(add["key"]) == "s/0/10"
    assert unb64(read["key"]) == "s/0/" and unb64(read["range_end"]) == "s/00"


def test_prefix_end_increments_the_last_byte_that_can_be():
    assert prefix_end(b"s/0/") == b"s/00"
    assert prefix_end(b"a\xff") == b"b"


# ---- transactions -------------------------------------------------------------------------

def test_plan_reads_what_the_transaction_depends_on():
    assert plan([["append", 1, 5], ["r", 2, None], ["w", 3, 1], ["r", 3, None], ["r", 1, None]]) == [1, 2]
    assert plan([["w", 1, 1], ["r", 1, None]]) == []


def test_run_against_sees_its_own_writes():
    done, final = run_against([["r", 1, None], ["append", 1, 7], ["r", 1, None], ["w", 2, 4], ["r", 2, None]],
                              {1: [5]})
    assert done == [["r", 1, [5]], ["append", 1, 7], ["r", 1, [5, 7]], ["w", 2, 4], ["r", 2, 4]]
    assert final == {1: [5, 7], 2: 4}


def txn_gateway(gateway, snapshot, commit):
    """The first txn is the snapshot read, the next the guarded commit."""
    calls = []

    def respond(path, body):
        calls.append(body)
        return (200, snapshot) if len(calls) == 1 else commit

    return gateway(respond)


def test_list_append_commit_is_guarded_on_every_mod_revision_it_read(gateway):
    snapshot = header(responses=[{"response_range": {"kvs": [kv("k/1", "[5]", 7)], "count": "1"}},
                                 {"response_range": {"header": {"revision": "9"}}}])
    fake = txn_gateway(gateway, snapshot, (200, header(succeeded=True)))
    done = invoke(client_for(fake.port), "txn", [["append", 1, 6], ["r", 1, None], ["r", 2, None]])
    assert done == {"type": "ok", "value": [["append", 1, 6], ["r", 1, [5, 6]], ["r", 2, None]]}
    read, commit = (body for _, body in fake.requests)
    assert [unb64(r["request_range"]["key"]) for r in read["success"]] == ["k/1", "k/2"]
    assert commit["compare"] == [
        {"key": b64("k/1"), "target": "MOD", "result": "EQUAL", "mod_revision": "7"},
        {"key": b64("k/2"), "target": "MOD", "result": "EQUAL", "mod_revision": "0"}]
    assert [(unb64(p["request_put"]["key"]), unb64(p["request_put"]["value"])) for p in commit["success"]] == \
        [("k/1", "[5,6]")]


def test_a_failed_guard_is_a_certain_failure(gateway):
    snapshot = header(responses=[{"response_range": {"kvs": [kv("k/1", "[5]", 7)]}}])
    fake = txn_gateway(gateway, snapshot, (200, header()))
    done = invoke(client_for(fake.port), "txn", [["append", 1, 6]])
    assert done["type"] == "fail" and done["error"].startswith("txn-conflict"), done


def test_a_writing_txn_whose_snapshot_read_timed_out_certainly_did_nothing(gateway):
    fake = gateway(lambda path, body: FakeGateway.HANG)
    done = invoke(client_for(fake.port), "txn", [["r", 1, None], ["w", 1, 2]])
    assert done["type"] == "fail" and "snapshot" in done["error"], done


def test_a_read_only_txn_that_timed_out_is_info(gateway):
    fake = gateway(lambda path, body: FakeGateway.HANG)
    assert invoke(client_for(fake.port), "txn", [["r", 1, None]])["type"] == "info"


def test_blind_writes_commit_in_one_unguarded_txn(gateway):
    fake = gateway(lambda path, body: (200, header()))
    done = invoke(client_for(fake.port), "txn", [["w", 1, 1], ["w", 1, 2], ["r", 1, None]])
    assert done == {"type": "ok", "value": [["w", 1, 1], ["w", 1, 2], ["r", 1, 2]]}
    (path, body), = fake.requests
    assert path == "/v3/kv/txn" and not body.get("compare")
    assert [unb64(p["request_put"]["value"]) for p in body["success"]] == ["2"]  # a key once


# ---- the lock -----------------------------------------------------------------------------

def lock_gateway(gateway, lock_answer=None):
    def respond(path, body):
        if path == "/v3/lease/grant":
            return 200, header(ID="7", TTL="2")
        if path == "/v3/lock/lock":
            return lock_answer or (200, header(key=b64("tectonic-lock/7")))
        if path == "/v3/lease/keepalive":
            return 200, {"result": header(ID="7", TTL="2")}
        return 200, header()
    return gateway(respond)


def test_acquire_grants_a_lease_then_locks_and_release_unlocks_the_key(gateway):
    fake = lock_gateway(gateway)
    client = client_for(fake.port)
    assert invoke(client, "acquire", None) == {"type": "ok", "value": None}
    assert invoke(client, "acquire", None)["error"].startswith("already-held")
    assert invoke(client, "release", None) == {"type": "ok", "value": None}
    client.close()
    calls = [(p, b) for p, b in fake.requests if p != "/v3/lease/keepalive"]
    assert calls == [("/v3/lease/grant", {"TTL": 2}),
                     ("/v3/lock/lock", {"name": b64("tectonic-lock"), "lease": "7"}),
                     ("/v3/lock/unlock", {"key": b64("tectonic-lock/7")})]


def test_keepalive_errors_do_not_end_the_keepalives(gateway):
    """A streamed keepalive error is a 200 with {"error": ...}: it says nothing about the
    lease, so renewals must go on (only a TTL of 0 means the lease is gone)."""
    keepalives = []

    def respond(path, body):
        if path == "/v3/lease/grant":
            return 200, header(ID="7", TTL="2")
        if path == "/v3/lock/lock":
            return 200, header(key=b64("tectonic-lock/7"))
        if path == "/v3/lease/keepalive":
            keepalives.append(body)
            if len(keepalives) <= 2:
                return 200, {"error": {"grpc_code": 14, "message": "etcdserver: no leader"}}
            return 200, {"result": header(ID="7", TTL="2")}
        return 200, header()
    fake = gateway(respond)
    client = client_for(fake.port)
    assert invoke(client, "acquire", None)["type"] == "ok"
    deadline = time.monotonic() + 5
    while len(keepalives) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    client.close()
    assert len(keepalives) >= 4  # two errors, then renewals went on


def test_release_without_the_lock_sends_nothing(gateway):
    fake = lock_gateway(gateway)
    done = invoke(client_for(fake.port), "release", None)
    assert done["type"] == "fail" and done["error"].startswith("not-held")
    assert fake.requests == []


def test_an_acquire_left_uncertain_revokes_its_lease_on_close(gateway):
    fake = lock_gateway(gateway, lock_answer=FakeGateway.HANG)
    client = client_for(fake.port)
    assert invoke(client, "acquire", None)["type"] == "info"
    client.close()
    assert fake.requests[-1] == ("/v3/lease/revoke", {"ID": "7"})


def test_unknown_ops_are_refused_without_sending(gateway):
    fake = gateway(lambda path, body: (200, header()))
    done = invoke(client_for(fake.port), "enqueue", 1)
    assert done["type"] == "fail" and "enqueue" in done["error"] and fake.requests == []


# ---- the target and the lock workload -----------------------------------------------------

def nodes(n=3):
    return [Node(f"n{i}", f"10.0.0.{i}", None, f"/d/n{i}") for i in range(1, n + 1)]


def test_members_start_with_the_cluster_flags():
    cluster = nodes()
    argv = EtcdTarget({"target_opts": {"election_timeout": 1500}}, cluster).argv(cluster[1])
    flags = dict(zip(argv[1::2], argv[2::2]))
    assert flags["--name"] == "n2" and flags["--data-dir"] == "/d/n2/data"
    assert flags["--initial-cluster"] == ("n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380,"
                                          "n3=http://10.0.0.3:2380")
    assert flags["--listen-client-urls"] == "http://10.0.0.2:2379"
    assert flags["--election-timeout"] == "1500" and "--pre-vote" in argv


@pytest.mark.parametrize("opts,message", [
    ({"serialisable": True}, "target_opts.serialisable: unknown option"),
    ({"serializable": "yes"}, "serializable must be bool"),
    ({"heartbeat_interval": 500}, "at least 5 heartbeat intervals"),
])
def test_bad_target_options_are_named_when_the_spec_is_resolved(opts, message):
    from harness.spec import resolve_spec
    with pytest.raises(SpecError, match=message):
        resolve_spec({"target": "etcd", "target_opts": opts})


def test_clock_faults_on_etcd_are_refused_with_the_reason():
    from nemesis import make_nemesis
    with pytest.raises(ValueError) as refused:
        make_nemesis(["clock"], nodes(), EtcdTarget({}, nodes()), random.Random(1), {})
    assert "etcd" in str(refused.value) and "\n" not in str(refused.value)


def test_lock_workload_is_refused_for_targets_without_a_lock_service():
    from harness.spec import resolve_spec
    with pytest.raises(SpecError, match="workload lock needs a target whose client does lock; "
                                        "target raftkv offers"):
        resolve_spec({"workload": "lock", "target": "raftkv"})


def test_lock_workload_cycles_each_process_and_restarts_a_successor_at_acquire():
    from harness.plugins import make_workload
    g = make_workload({"workload": "lock", "target": "etcd",
                       "workload_opts": {"hold": 1, "rest": 1}}).generator
    ctx = gen.Context(0, frozenset({0}), frozenset({0}), {0: 0}, 1)
    fs = []
    for _ in range(5):
        op, g = g.op(ctx)
        fs.append(op["f"] if op["type"] == "invoke" else op["type"])
    assert fs == ["acquire", "sleep", "release", "sleep", "acquire"]
    op, g = g.op(ctx)  # the hold after that acquire, but...
    retired = gen.Context(0, frozenset({0}), frozenset({0}), {0: 1}, 1)
    op, g = g.op(retired)  # ...process 0 got info: its successor starts over
    assert op["f"] == "acquire" and op["process"] == 1
