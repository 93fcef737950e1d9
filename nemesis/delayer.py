"""The userspace delayer: holds packets that iptables queued to it, then lets them go.

Run inside a node's network namespace as `python -m nemesis.delayer --queue N ...`; the
delay nemesis (nemesis/delay.py) starts it, points the node's outgoing packets at queue N
with an `NFQUEUE --queue-bypass` rule, and stops it with SIGTERM. The kernel has no netem,
so latency is made here: every queued packet gets a release time drawn from the chosen
distribution, and its verdict (ACCEPT) is sent when that time comes. Verdicts may be given
in any order, so jitter reorders packets as it would on a real link, and `--reorder P`
sends a fraction P of packets at once, past the ones being held (netem's meaning).
Only packet ids cross to userspace (copy mode META): the delayer never sees or alters data.

Why it cannot cut a node off: with --queue-bypass the kernel accepts packets while no
program is bound to the queue, so a delayer that dies (even SIGKILLed) only loses the few
packets it was holding, which TCP resends; and the queue is fail-open, so a full queue
lets packets through rather than dropping them. On SIGTERM every held packet is released
at once before exiting: healing never drops what was in flight.

The NFQUEUE protocol is spoken over an AF_NETLINK socket with the standard library only
(message layouts from linux/netfilter/nfnetlink_queue.h). On exit one JSON line of counts
goes to stdout (the delayer's log).
"""
from __future__ import annotations

import argparse
import errno
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NLA_TYPE_MASK = 0x3FFF  # strips NLA_F_NESTED and NLA_F_NET_BYTEORDER

DISTRIBUTIONS = ("uniform", "normal")
QUEUE_MAXLEN = 65536


def delay_for(rng: random.Random, mean: float, jitter: float, distribution: str) -> float:
    """A packet's delay in seconds: mean ± jitter, uniform over that range or normal with
    jitter as its standard deviation; never negative."""
    if jitter <= 0:
        return mean
    if distribution == "normal":
        return max(0.0, rng.gauss(mean, jitter))
    return max(0.0, rng.uniform(mean - jitter, mean + jitter))


class Queue:
    """One NFQUEUE queue, bound on an AF_NETLINK socket of this network namespace."""

    def __init__(self, number: int):
        self.number = number
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((0, 0))
        self._seq = 0
        self._config(_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)))
        self._config(_attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)))
        self._config(_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN)))
        self._config(_attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))
                     + _attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)))

    def fileno(self) -> int:
        return self.sock.fileno()

    def packets(self):
        """The id of every packet in one read of the socket."""
        try:
            data = self.sock.recv(1 << 17)
        except OSError as e:
            if e.errno == errno.ENOBUFS:  # the kernel dropped messages; carry on with the rest
                return
            raise
        for msg_type, body in _messages(data):
            if msg_type != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                continue
            attrs = dict(_attrs(body[4:]))  # past struct nfgenmsg
            packet_id = struct.unpack("!I", attrs[NFQA_PACKET_HDR][:4])[0]
            yield packet_id

    def accept(self, packet_id: int) -> None:
        self._send(NFQNL_MSG_VERDICT, _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)))

    def _config(self, attrs: bytes) -> None:
        """Send one config message and wait for the kernel's acknowledgement."""
        seq = self._send(NFQNL_MSG_CONFIG, attrs, ack=True)
        while True:
            for msg_type, body in _messages(self.sock.recv(65536)):
                if msg_type == NLMSG_ERROR:
                    code, = struct.unpack("=i", body[:4])
                    echoed_seq, = struct.unpack("=I", body[12:16])
                    if echoed_seq != seq:
                        continue
                    if code:
                        raise OSError(-code, f"NFQUEUE config of queue {self.number}: "
                                             f"{os.strerror(-code)}")
                    return

    def _send(self, msg: int, attrs: bytes, ack: bool = False) -> int:
        self._seq += 1
        body = struct.pack("!BBH", socket.AF_UNSPEC, 0, self.number) + attrs
        flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0)
        header = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags,
                             self._seq, 0)
        self.sock.send(header + body)
        return self._seq


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _attrs(data: bytes):
    while len(data) >= 4:
        length, kind = struct.unpack("=HH", data[:4])
        if length < 4:
            return
        yield kind & NLA_TYPE_MASK, data[4:length]
        data = data[(length + 3) & ~3:]


def _messages(data: bytes):
    while len(data) >= 16:
        length, msg_type = struct.unpack("=IH", data[:6])
        if length < 16:
            return
        yield msg_type, data[16:length]
        data = data[(length + 3) & ~3:]


def run(queue: Queue, mean: float, jitter: float, distribution: str, reorder: float,
        rng: random.Random, stopping) -> dict:
    """Hold and release packets until stopping() is true; then release all held ones.
    Returns the counts for the log."""
    counts = {"packets": 0, "sent_at_once": 0}
    held: list[tuple[float, int]] = []  # (release time, packet id), soonest first
    while not stopping():
        now = time.monotonic()
        while held and held[0][0] <= now:
            queue.accept(heapq.heappop(held)[1])
        wait = min(0.5, held[0][0] - now) if held else 0.5
        try:
            ready, _, _ = select.select([queue], [], [], max(0.0, wait))
        except InterruptedError:
            continue
        if not ready:
            continue
        now = time.monotonic()
        for packet_id in queue.packets():
            counts["packets"] += 1
            if reorder > 0 and rng.random() < reorder:
                queue.accept(packet_id)
                counts["sent_at_once"] += 1
            else:
                heapq.heappush(held, (now + delay_for(rng, mean, jitter, distribution), packet_id))
    for _, packet_id in held:
        queue.accept(packet_id)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nemesis.delayer", description=__doc__.split("\n")[0])
    parser.add_argument("--queue", type=int, required=True)
    parser.add_argument("--mean", type=float, default=0.0, help="seconds")
    parser.add_argument("--jitter", type=float, default=0.0, help="seconds")
    parser.add_argument("--distribution", choices=DISTRIBUTIONS, default="uniform")
    parser.add_argument("--reorder", type=float, default=0.0, help="probability")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    queue = Queue(args.queue)
    print(json.dumps({"bound": args.queue}), flush=True)
    counts = run(queue, args.mean, args.jitter, args.distribution, args.reorder,
                 random.Random(args.seed), lambda: bool(stop))
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
