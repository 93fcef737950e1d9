"""The per-node shim: runs one Maelstrom node binary and is its network.

tectonic starts one shim in each node's namespace (`python targets/maelstrom/shim.py`;
only the standard library). The
shim starts the node binary as its child, speaks to it over stdin/stdout as Maelstrom does
(JSON messages, one per line), and carries its messages over the real network:

  * to peers: each message whose `dest` is another node goes out as one UDP datagram to
    that node's shim, which writes it to its own node's stdin. UDP, because Maelstrom's
    network promises nothing either: a partition or packet loss simply drops the message,
    and nodes are written to live with that.
  * to clients: tectonic's clients connect over TCP and send message bodies, one per line;
    each connection is a Maelstrom client ("c1", "c2", ...), and messages the node sends to
    that client id go back on the connection (the whole message, one line).

Contracts: the shim answers on its TCP port only once the node has answered `init` with
`init_ok`, so a connection that succeeds means the node is ready. It exits when the node
exits (with the node's exit code), and the node dies with the shim (PR_SET_PDEATHSIG), so
killing the shim is killing the node. The node's pid is written to --node-pidfile, so it can
be paused with the shim. The node runs in --cwd, its stderr goes where the shim's does (the
node's log). A message over MAX_DATAGRAM bytes cannot cross the network and is dropped with a
line in the log.
"""
from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

MAX_DATAGRAM = 65000
INIT_TIMEOUT = 10.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel sends it SIGKILL when the shim
    # (the thread that forked it, which is the shim's main thread) dies.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def log(text: str) -> None:
    print(f"shim {time.strftime('%H:%M:%S')}: {text}", file=sys.stderr, flush=True)


class Shim:
    def __init__(self, node_id: str, peers: dict[str, tuple[str, int]], listen: tuple[str, int],
                 argv: list[str], cwd: str, node_pidfile: str):
        self.node_id = node_id
        self.peers = peers
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(listen)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(listen)
        self.child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      cwd=cwd, preexec_fn=_die_with_parent)
        with open(node_pidfile, "w") as f:
            f.write(str(self.child.pid))
        self._stdin_lock = threading.Lock()
        self._clients: dict[str, tuple[socket.socket, threading.Lock]] = {}
        self._client_ids = itertools.count(1)

    # ---- to the node ----------------------------------------------------------------------

    def to_node(self, line: bytes) -> None:
        with self._stdin_lock:
            try:
                self.child.stdin.write(line.rstrip(b"\n") + b"\n")
                self.child.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass  # the node is gone; main() sees it exit and the shim follows

    def init(self) -> None:
        """Send init and wait for init_ok; anything else the node says first is dropped."""
        body = {"type": "init", "msg_id": 1, "node_id": self.node_id,
                "node_ids": list(self.peers)}
        self.to_node(json.dumps({"src": "c0", "dest": self.node_id, "body": body}).encode())
        deadline = time.monotonic() + INIT_TIMEOUT
        while time.monotonic() < deadline:
            line = self.child.stdout.readline()
            if not line:
                raise SystemExit(f"the node exited before answering init (exit code {self.child.wait()})")
            msg = _parse(line)
            if msg and msg["body"].get("type") == "init_ok" and msg["body"].get("in_reply_to") == 1:
                return
            log(f"before init_ok, dropped: {line[:200]!r}")
        raise SystemExit(f"the node did not answer init within {INIT_TIMEOUT:.0f}s")

    # ---- from the node --------------------------------------------------------------------

    def route_node_output(self) -> None:
        for line in iter(self.child.stdout.readline, b""):
            msg = _parse(line)
            if msg is None:
                log(f"not a message on the node's stdout, dropped: {line[:200]!r}")
                continue
            dest = msg["dest"]
            if dest == self.node_id:
                self.to_node(line)
            elif dest in self.peers:
                if len(line) > MAX_DATAGRAM:
                    log(f"message to {dest} of {len(line)} bytes is over {MAX_DATAGRAM}: dropped")
                    continue
                try:
                    self.udp.sendto(line, self.peers[dest])
                except OSError:
                    pass  # unreachable now (a partition): the network lost it
            elif dest in self._clients:
                conn, lock = self._clients[dest]
                with lock:
                    try:
                        conn.sendall(line if line.endswith(b"\n") else line + b"\n")
                    except OSError:
                        pass  # the client hung up; its op is already settled on its side
            else:
                log(f"message to unknown destination {dest!r}, dropped")

    # ---- from the network -----------------------------------------------------------------

    def receive_peers(self) -> None:
        while True:
            try:
                data, _ = self.udp.recvfrom(MAX_DATAGRAM + 1)
            except OSError:
                continue  # an error queued by an earlier send (ICMP): no message lost here
            if _parse(data) is not None:
                self.to_node(data)

    def serve_clients(self) -> None:
        self.tcp.listen(64)
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError as e:
                log(f"accept: {e}")
                time.sleep(0.1)
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client_id = f"c{next(self._client_ids)}"
            self._clients[client_id] = (conn, threading.Lock())
            threading.Thread(target=self._client, args=(client_id, conn), daemon=True).start()

    def _client(self, client_id: str, conn: socket.socket) -> None:
        try:
            for line in conn.makefile("rb"):
                try:
                    body = json.loads(line)
                except ValueError:
                    continue
                if isinstance(body, dict):
                    self.to_node(json.dumps({"src": client_id, "dest": self.node_id,
                                             "body": body}).encode())
        except OSError:
            pass
        finally:
            self._clients.pop(client_id, None)
            conn.close()


def _parse(line: bytes) -> dict | None:
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    if not isinstance(msg, dict) or not isinstance(msg.get("body"), dict) or \
            not isinstance(msg.get("dest"), str):
        return None
    return msg


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--node", required=True, help="this node's id, e.g. n1")
    p.add_argument("--peers", required=True, help="n1=ADDR:PORT,n2=ADDR:PORT,... (this node included)")
    p.add_argument("--cwd", required=True, help="the node's working directory")
    p.add_argument("--node-pidfile", required=True)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- the node binary and its arguments")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    peers = {name: _address(addr) for name, _, addr in
             (item.partition("=") for item in args.peers.split(","))}
    shim = Shim(args.node, peers, peers[args.node], command, args.cwd, args.node_pidfile)
    signal.signal(signal.SIGTERM, lambda *_: shim.child.terminate())
    shim.init()
    log(f"{args.node}: init_ok; serving on {peers[args.node][0]}:{peers[args.node][1]}")
    for work in (shim.route_node_output, shim.receive_peers, shim.serve_clients):
        threading.Thread(target=work, daemon=True).start()
    code = shim.child.wait()
    log(f"the node exited with code {code}")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
