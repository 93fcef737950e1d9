"""raftkv's server: the Raft core (raft.py) wrapped in real sockets, a real disk and a clock.

  python -m targets.raftkv.server --id n1 --peers n1=127.0.0.1:7000,n2=... \\
      --data-dir DIR --listen 127.0.0.1:7000 [--bug NAME]...

One asyncio loop does everything, so the core needs no locks. Work is batched per loop
iteration: every request and message that arrived together goes into one Ready, hence one
fsync and one write per peer. Peers and clients share the listening port and speak JSON
lines (PROTOCOL.md); a peer connection starts with {"peer": "<id>"}. Each node writes only
on the connections it opened to its peers and reads only on those its peers opened to it.
"""
from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import logging
import os
import random
import signal
import sys

from targets.raftkv import clock
from targets.raftkv.bugs import BUGS
from targets.raftkv.raft import LEADER, Config, ConfigRefused, Raft, Ready, config_of
from targets.raftkv.statemachine import KVStore, TxnAborted, read_only, validate
from targets.raftkv.storage import Storage

PENDING_TTL = 30.0          # seconds a request may wait for its outcome before "info"
LINK_BUFFER_LIMIT = 8 << 20  # bytes queued to one peer before messages are dropped
LINK_STUCK_AFTER = 1.0      # seconds a peer may leave our writes unread before we reconnect

log = logging.getLogger("raftkv")
_encode = json.JSONEncoder(separators=(",", ":")).encode


def ok(value=None) -> dict:
    return {"type": "ok", "value": value}


def fail(error: str) -> dict:
    """The operation certainly did not take effect."""
    return {"type": "fail", "error": error}


def info(error: str) -> dict:
    """The operation may or may not have taken effect."""
    return {"type": "info", "error": error}


def _blind(ops: list) -> bool:
    return all(op[0] in ("w", "append") for op in ops)


class _LinkProtocol(asyncio.Protocol):
    def __init__(self):
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data):
        pass  # peers answer on their own connections

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(None)


class PeerLink:
    """Our outbound connection to one peer, reconnected whenever it breaks."""

    def __init__(self, server: "Server", peer: str, host: str, port: int):
        self.server, self.peer, self.host, self.port = server, peer, host, port
        self.transport: asyncio.Transport | None = None
        self.out: list[bytes] = []
        self._stuck_since: float | None = None

    def queue(self, frame: bytes) -> None:
        if self.transport is not None:
            self.out.append(frame)

    def flush(self) -> None:
        if self.out:
            if self.transport is not None and \
                    self.transport.get_write_buffer_size() < LINK_BUFFER_LIMIT:
                self.transport.write(b"".join(self.out))
            self.out.clear()

    def check_stuck(self, now: float, last_heard: float) -> None:
        """A paused or cut-off peer leaves our writes unread and says nothing; a fresh
        connection drops the stale backlog (Raft retransmits what matters)."""
        if self.transport is None or self.transport.get_write_buffer_size() == 0:
            self._stuck_since = None
        elif self._stuck_since is None or now < self._stuck_since:
            self._stuck_since = now
        elif now - self._stuck_since > LINK_STUCK_AFTER and now - last_heard > LINK_STUCK_AFTER:
            log.info("link to %s stuck, reconnecting", self.peer)
            self.transport.abort()
            self._stuck_since = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        hello = _encode({"peer": self.server.id}).encode() + b"\n"
        while True:
            try:
                transport, proto = await asyncio.wait_for(
                    loop.create_connection(_LinkProtocol, self.host, self.port), 1.0)
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.1)
                continue
            transport.write(hello)
            self.transport = transport
            await proto.closed
            self.transport = None
            self.out.clear()
            self.server.on_link_down(self.peer)
            await asyncio.sleep(0.05)


class _Connection(asyncio.Protocol):
    """An inbound connection: a client's, or a peer's (after its hello line)."""

    def __init__(self, server: "Server"):
        self.server = server
        self.transport = None
        self.peer: str | None = None
        self._buf = b""

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.transport = None

    def data_received(self, data):
        lines = (self._buf + data).split(b"\n")
        self._buf = lines.pop()
        # One clock read per batch: under libfaketime each read costs a file read.
        now = clock.now()
        for line in lines:
            if line:
                self.server.on_line(self, line, now)
        self.server.schedule_flush()

    def send(self, obj: dict) -> None:
        if self.transport is not None:
            self.transport.write(_encode(obj).encode() + b"\n")


class Server:
    def __init__(self, opts: argparse.Namespace):
        self.id = opts.id
        self.addresses = opts.peers
        self.bugs = set(opts.bug)
        self.opts = opts
        cfg = Config(election_timeout_min=opts.election_timeout_min,
                     election_timeout_max=opts.election_timeout_max,
                     heartbeat_interval=opts.heartbeat_interval,
                     max_entries_per_message=opts.max_entries_per_message,
                     max_inflight_entries=opts.max_inflight_entries,
                     count_old_terms="no-term-check" in self.bugs,
                     lease_reads="lease-reads" in self.bugs)
        self.storage = Storage(opts.data_dir, durable="no-fsync" not in self.bugs)
        persistent = self.storage.load()
        self.sm = KVStore()
        if persistent.snapshot is not None:
            self.sm.restore(persistent.snapshot.data)
        # --peers is the address book of every server that may ever be a member; the
        # initial configuration is all of them, or none with --join (a new server, added
        # to the running cluster by a configuration change).
        initial = [] if opts.join else list(self.addresses)
        self.raft = Raft(self.id, initial, persistent, cfg, random.Random(), clock.now())
        self.applied = self.raft.applied
        others = [p for p in self.addresses if p != self.id]
        self.links = {p: PeerLink(self, p, *self.addresses[p]) for p in others}
        self.last_heard = {p: float("-inf") for p in others}
        self.pending_writes: dict[int, tuple] = {}   # index -> (term, reply, early, expires)
        self.pending_reads: dict[int, tuple] = {}    # read id -> (ops, reply, expires)
        self.reads_after_apply: list = []            # heap of (index, read id, ops, reply)
        self.forwards: dict[int, tuple] = {}         # forward id -> (leader, reply, expires)
        self._read_seq = 0
        self._forward_seq = 0
        self._flush_scheduled = False
        self._role = None
        self._last_lazy_sync = clock.now()
        log.info("recovered: term %s, vote %s, snapshot %s, log to %s", persistent.term,
                 persistent.vote, self.raft.snapshot.index, self.raft.last_index())

    # ---- input ---------------------------------------------------------------------------

    def on_line(self, conn: _Connection, line: bytes, now: float) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            conn.send({"id": None, **fail("bad-request: not JSON")})
            return
        if conn.peer is not None:
            self.on_peer_frame(conn.peer, msg, now)
        elif isinstance(msg, dict) and "peer" in msg:
            if msg["peer"] not in self.links:
                log.warning("hello from unknown peer %r", msg["peer"])
                conn.transport.close()
                return
            conn.peer = msg["peer"]
        elif not isinstance(msg, dict):
            conn.send({"id": None, **fail("bad-request: expected a JSON object")})
        else:
            req_id = msg.get("id")
            self.handle_request(msg, lambda outcome: conn.send({"id": req_id, **outcome}), now)

    def on_peer_frame(self, peer: str, frame: list, now: float) -> None:
        kind = frame[0]
        self.last_heard[peer] = now
        if kind == "r":
            self.raft.step(peer, frame[1], now)
        elif kind == "f":
            fid = frame[1]
            link = self.links[peer]
            self.handle_request(frame[2], lambda outcome: link.queue(
                _encode(["fr", fid, outcome]).encode() + b"\n"), now, forwarded=True)
        elif kind == "fr":
            entry = self.forwards.pop(frame[1], None)
            if entry is not None:
                entry[1](frame[2])

    def handle_request(self, req: dict, reply, now: float, forwarded: bool = False) -> None:
        if req.get("status"):
            reply(ok(self.status()))
            return
        if "members" in req:
            self.change_members(req, reply, now, forwarded)
            return
        ops = req.get("ops")
        try:
            validate(ops)
        except ValueError as e:
            reply(fail(f"bad-request: {e}"))
            return
        reading = read_only(ops)
        if reading and "stale-reads" in self.bugs:
            reply(ok(self.sm.read(ops)))
            return
        raft = self.raft
        expires = now + PENDING_TTL
        if raft.state == LEADER:
            if reading:
                self._read_seq += 1
                raft.read_index(self._read_seq, now)
                self.pending_reads[self._read_seq] = (ops, reply, expires)
            else:
                index, term = raft.propose(ops, now)
                early = "early-ack" in self.bugs and _blind(ops)
                older = self.pending_writes.get(index)
                if older is not None:
                    # Proposed at this index in an earlier term; that entry is gone from
                    # our log but may live on elsewhere and still commit.
                    older[1](info("outcome-unknown: overwritten in the local log"))
                self.pending_writes[index] = (term, reply, early, expires)
            self.schedule_flush()
            return
        self._forward(req, reply, now, forwarded)

    def change_members(self, req: dict, reply, now: float, forwarded: bool) -> None:
        """{"members": {"add": ID}} or {"members": {"remove": ID}}: one server's change,
        answered with the new member list once it commits."""
        change = req["members"]
        if not (isinstance(change, dict) and len(change) == 1
                and next(iter(change)) in ("add", "remove")
                and change.get("add", change.get("remove")) in self.addresses):
            reply(fail(f"bad-request: members takes {{\"add\" or \"remove\": ID}} with an "
                       f"ID of --peers ({', '.join(sorted(self.addresses))})"))
            return
        raft = self.raft
        if raft.state != LEADER:
            self._forward(req, reply, now, forwarded)
            return
        members = set(raft.members)
        if "add" in change:
            if change["add"] in members:
                reply(fail(f"already-a-member: {change['add']}"))
                return
            members.add(change["add"])
        else:
            if change["remove"] not in members:
                reply(fail(f"not-a-member: {change['remove']}"))
                return
            members.discard(change["remove"])
        try:
            index, term = raft.propose_config(sorted(members), now)
        except ConfigRefused as e:
            reply(fail(f"refused: {e}"))
            return
        log.info("proposed configuration %s at %s", sorted(members), index)
        older = self.pending_writes.get(index)
        if older is not None:
            older[1](info("outcome-unknown: overwritten in the local log"))
        self.pending_writes[index] = (term, reply, False, now + PENDING_TTL)
        self.schedule_flush()

    def _forward(self, req: dict, reply, now: float, forwarded: bool) -> None:
        """Send a request we cannot serve to the leader we know; it answers through us."""
        raft = self.raft
        expires = now + PENDING_TTL
        if forwarded:
            reply(fail("not-leader"))
            return
        leader = raft.leader
        link = self.links.get(leader) if leader is not None else None
        if link is None or link.transport is None:
            reply(fail("no-leader" if leader is None else "leader-unreachable"))
            return
        self._forward_seq += 1
        self.forwards[self._forward_seq] = (leader, reply, expires)
        link.queue(_encode(["f", self._forward_seq, req]).encode() + b"\n")
        self.schedule_flush()

    def on_link_down(self, peer: str) -> None:
        lost = [fid for fid, (leader, _, _) in self.forwards.items() if leader == peer]
        for fid in lost:
            self.forwards.pop(fid)[1](info("forward-connection-lost"))

    # ---- the Ready loop ------------------------------------------------------------------

    def schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        raft = self.raft
        while raft.has_ready():
            r = raft.ready()
            self._send_raft(r.early_messages)
            self._flush_links()
            self.storage.save(r)
            if r.snapshot is not None:
                self._install_snapshot(r)
            self._send_raft(r.messages)
            if r.entries and "early-ack" in self.bugs:
                self._ack_early(r)
            for index, term, cmd in r.committed:
                self._apply(index, term, cmd)
            self._answer_reads(r)
            raft.advance(r)
        self._flush_links()  # also carries forwarded requests and their replies
        self._note_role()
        if self.applied - raft.snapshot.index >= self.opts.snapshot_every:
            self._compact()

    def _send_raft(self, messages: list) -> None:
        links = self.links
        for to, msg in messages:
            links[to].queue(_encode(["r", msg]).encode() + b"\n")

    def _flush_links(self) -> None:
        for link in self.links.values():
            link.flush()

    def _install_snapshot(self, r: Ready) -> None:
        self.sm.restore(r.snapshot.data)
        self.applied = r.snapshot.index
        log.info("installed a snapshot up to %s from the leader", self.applied)
        for index in [i for i in self.pending_writes if i <= self.applied]:
            self.pending_writes.pop(index)[1](info("outcome-unknown: replaced by a snapshot"))

    def _ack_early(self, r: Ready) -> None:
        for index, term, _ in r.entries:
            pending = self.pending_writes.get(index)
            if pending is not None and pending[0] == term and pending[2]:
                del self.pending_writes[index]
                pending[1](ok(None))

    def _apply(self, index: int, term: int, cmd) -> None:
        self.applied = index
        outcome = None
        members = config_of(cmd)
        if members is not None:
            outcome = ok({"members": sorted(members)})
            log.info("configuration %s committed at %s", sorted(members), index)
        elif cmd is not None:
            try:
                outcome = ok(self.sm.apply(cmd))
            except TxnAborted as e:
                outcome = fail(str(e))
        pending = self.pending_writes.pop(index, None)
        if pending is not None:
            # (index, term) names one entry: another term there means ours never commits.
            pending[1](outcome if pending[0] == term else fail("superseded"))

    def _answer_reads(self, r: Ready) -> None:
        for read_id, index in r.reads:
            pending = self.pending_reads.pop(read_id, None)
            if pending is not None:
                heapq.heappush(self.reads_after_apply, (index, read_id, pending[0], pending[1]))
        for read_id in r.dropped_reads:
            pending = self.pending_reads.pop(read_id, None)
            if pending is not None:
                pending[1](fail("not-leader"))
        waiting = self.reads_after_apply
        while waiting and waiting[0][0] <= self.applied:
            _, _, ops, reply = heapq.heappop(waiting)
            reply(ok(self.sm.read(ops)))

    def _compact(self) -> None:
        raft = self.raft
        raft.compact(self.applied, self.sm.snapshot())
        base = raft.snapshot.index + 1
        rest = [(base + k, term, cmd) for k, (term, cmd) in enumerate(raft.entries)]
        self.storage.compact(raft.snapshot, (raft.term, raft.vote), rest)
        log.info("compacted the log up to %s", raft.snapshot.index)

    def _note_role(self) -> None:
        role = (self.raft.state, self.raft.term, self.raft.leader)
        if role != self._role:
            self._role = role
            log.info("%s in term %s, leader %s", *role)

    # ---- periodic work -------------------------------------------------------------------

    async def _ticker(self) -> None:
        tick = self.opts.tick
        last_chores = 0.0
        while True:
            await asyncio.sleep(tick)
            now = clock.now()
            self.raft.tick(now)
            self._flush()
            if abs(now - last_chores) >= 0.1:
                last_chores = now
                self._chores(now)

    def _chores(self, now: float) -> None:
        for link in self.links.values():
            link.check_stuck(now, self.last_heard[link.peer])
        if not self.storage.durable and now - self._last_lazy_sync >= self.opts.lazy_sync_interval:
            self._last_lazy_sync = now
            self.storage.sync()
        # Nothing waits forever: a request whose outcome we cannot learn is "info".
        for table, outcome in ((self.pending_writes, info("timeout")),
                               (self.pending_reads, fail("timeout")),
                               (self.forwards, info("timeout"))):
            for key in [k for k, v in table.items() if v[-1] < now]:
                table.pop(key)[1](outcome)

    def status(self) -> dict:
        raft = self.raft
        return {"node": self.id, "state": raft.state, "term": raft.term, "leader": raft.leader,
                "commit": raft.commit, "applied": self.applied, "last_index": raft.last_index(),
                "snapshot_index": raft.snapshot.index, "time": clock.now(),
                "members": raft.members, "config_index": raft.config_index(),
                "bugs": sorted(self.bugs)}

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_fail_stop)
        host, port = self.opts.listen
        server = await loop.create_server(lambda: _Connection(self), host, port,
                                          reuse_address=True)
        log.info("listening on %s:%s, peers %s, bugs %s", host, port, self.addresses,
                 sorted(self.bugs) or "none")
        stop = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        tasks = [asyncio.ensure_future(link.run()) for link in self.links.values()]
        tasks.append(asyncio.ensure_future(self._ticker()))
        for task in tasks:
            task.add_done_callback(_task_ended)
        await stop
        for task in tasks:
            task.cancel()
        server.close()
        self.storage.close()
        log.info("stopped")


def _fail_stop(loop, context) -> None:
    # An unexpected error leaves the node's state in doubt: stop dead, like a crash, and
    # let recovery from the data dir sort it out, rather than serve from a broken state.
    log.critical("fatal: %s", context.get("message"), exc_info=context.get("exception"))
    logging.shutdown()
    os._exit(70)


def _task_ended(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        _fail_stop(task.get_loop(), {"message": f"task {task.get_name()} died",
                                     "exception": task.exception()})


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _peers(text: str) -> dict[str, tuple[str, int]]:
    peers = {}
    for item in text.split(","):
        name, sep, addr = item.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"expected ID=HOST:PORT in --peers, got {item!r}")
        peers[name] = _address(addr)
    return peers


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m targets.raftkv.server",
                                description="raftkv: a Raft key-value store for tectonic")
    p.add_argument("--id", required=True)
    p.add_argument("--peers", required=True, type=_peers,
                   help="every member, this node included: n1=HOST:PORT,n2=HOST:PORT,...")
    p.add_argument("--join", action="store_true",
                   help="start with no configuration: a new server, waiting to be added")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--listen", required=True, type=_address)
    p.add_argument("--bug", action="append", default=[], choices=BUGS)
    p.add_argument("--election-timeout-min", type=float, default=0.3, metavar="SECONDS")
    p.add_argument("--election-timeout-max", type=float, default=0.6, metavar="SECONDS")
    p.add_argument("--heartbeat-interval", type=float, default=0.05, metavar="SECONDS")
    p.add_argument("--tick", type=float, default=0.01, metavar="SECONDS")
    p.add_argument("--max-entries-per-message", type=int, default=512, metavar="ENTRIES")
    p.add_argument("--max-inflight-entries", type=int, default=8192, metavar="ENTRIES",
                   help="entries sent to one follower and not yet acknowledged")
    p.add_argument("--snapshot-every", type=int, default=10_000, metavar="ENTRIES")
    p.add_argument("--lazy-sync-interval", type=float, default=2.0, metavar="SECONDS",
                   help="with --bug no-fsync: how often the buffered log reaches the disk")
    opts = p.parse_args(argv)
    if opts.id not in opts.peers:
        p.error(f"--id {opts.id} is not among --peers {sorted(opts.peers)}")
    if not 0 < opts.election_timeout_min < opts.election_timeout_max:
        p.error("need 0 < --election-timeout-min < --election-timeout-max")
    return opts


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format=f"%(asctime)s %(levelname)s {opts.id} %(message)s")
    asyncio.run(Server(opts).serve())


if __name__ == "__main__":
    main()
