"""UDP probes that show what a network fault does: round trips, copies, order, who hears whom.

A probe server runs on a node (`python -m nemesis.probe serve ADDRESS PORT`): it echoes
every datagram back to its sender and remembers which addresses it heard from. The other
commands run on a node (or the controller) and print one JSON value:

  rtt ADDRESS PORT COUNT      round-trip seconds of COUNT sequential pings (null if lost)
                              and how many extra (duplicated) echoes arrived
  burst ADDRESS PORT COUNT    COUNT datagrams sent back to back; the order their echoes
                              came back in, and how many came back twice
  hello ADDRESS PORT          a few datagrams the server will remember this node by
  heard ADDRESS PORT          the addresses the server heard from since it was last asked
                              (the asking itself is not recorded)

UDP, because it has no handshake: a one-way cut or a duplicated packet shows as it is,
where TCP would hide it behind retransmission and connection failure.
"""
from __future__ import annotations

import json
import socket
import sys
import time

ASK = b"?"
REPLY_WAIT = 1.0  # seconds an echo may take before the ping counts as lost


def serve(address: str, port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, port))
    heard: set[str] = set()
    while True:
        data, sender = sock.recvfrom(2048)
        if data == ASK:
            sock.sendto(json.dumps(sorted(heard)).encode(), sender)
            heard.clear()
            continue
        heard.add(sender[0])
        sock.sendto(data, sender)


def rtt(address: str, port: int, count: int) -> dict:
    sock = _client()
    times, extra = [], 0
    for i in range(count):
        tag = f"ping {i}".encode()
        sent = time.monotonic()
        sock.sendto(tag, (address, port))
        got = None
        while got is None and time.monotonic() - sent < REPLY_WAIT:
            try:
                data = sock.recv(2048)
            except socket.timeout:
                break
            if data == tag:
                got = time.monotonic() - sent
            else:
                extra += 1  # a copy of an earlier echo, or of the request
        times.append(got)
    extra += _drain(sock)
    return {"rtt": times, "extra": extra}


def burst(address: str, port: int, count: int) -> dict:
    sock = _client()
    for i in range(count):
        sock.sendto(f"{i}".encode(), (address, port))
    order = []
    deadline = time.monotonic() + REPLY_WAIT + 1.0
    while time.monotonic() < deadline:
        try:
            order.append(int(sock.recv(2048)))
        except socket.timeout:
            break
    seen: set[int] = set()
    firsts = [i for i in order if not (i in seen or seen.add(i))]
    return {"order": firsts, "copies": len(order) - len(firsts)}


def hello(address: str, port: int) -> None:
    sock = _client()
    for _ in range(3):
        sock.sendto(b"hello", (address, port))


def heard(address: str, port: int) -> list[str]:
    sock = _client()
    sock.sendto(ASK, (address, port))
    return json.loads(sock.recv(65536))


def _client() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(REPLY_WAIT)
    return sock


def _drain(sock: socket.socket) -> int:
    sock.settimeout(0.2)
    n = 0
    try:
        while True:
            sock.recv(2048)
            n += 1
    except socket.timeout:
        return n


def main(argv: list[str]) -> int:
    command, address, port, *rest = argv
    port = int(port)
    if command == "serve":
        serve(address, port)
    elif command == "rtt":
        print(json.dumps(rtt(address, port, int(rest[0]))))
    elif command == "burst":
        print(json.dumps(burst(address, port, int(rest[0]))))
    elif command == "hello":
        hello(address, port)
    elif command == "heard":
        print(json.dumps(heard(address, port)))
    else:
        raise SystemExit(f"unknown probe command {command!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
