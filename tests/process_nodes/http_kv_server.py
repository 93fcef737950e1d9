#!/usr/bin/env python3
"""A replicated key-value server speaking tectonic's http-kv protocol, for tectonic's tests.

The first node of --peers is the primary and holds the state; the others forward every
request to it over HTTP and relay the answer (so partitions between nodes matter). One lock
around each change and its save to DATA_DIR/state.json (done before the answer, so a killed
primary restarts with everything it acknowledged): linearizable. A backup that cannot reach
the primary answers 421 when its forward was never sent (definite: nothing happened) and
502 when it was (indefinite).

--stale-reads plants a bug: the primary pushes each change to the backups without waiting,
and backups answer reads from their own copy, stale whenever a push was lost.

Only the Python standard library; run it as any server binary.
"""
import argparse
import http.client
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Store:
    def __init__(self, data_dir):
        self.path = os.path.join(data_dir, "state.json")
        self.lock = threading.Lock()
        self.state = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.state = json.load(f)

    def save(self):
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.state, f)
        os.replace(self.path + ".tmp", self.path)


def make_handler(args, store, primary, backups):
    is_primary = args.node == primary[0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self, status, body=None):
            data = json.dumps(body if body is not None else {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n)) if n else None

        def do_GET(self):
            if self.path == "/health":
                return self.answer(200, {"node": args.node})
            if is_primary or args.stale_reads:
                return self.apply("GET", None)
            self.forward("GET", None)

        def do_PUT(self):
            self.route("PUT")

        def do_POST(self):
            if self.path == "/copy":  # --stale-reads: the primary's unacknowledged push
                store.state.update(self.body())
                return self.answer(200)
            self.route("POST")

        def route(self, method):
            body = self.body()
            if is_primary:
                self.apply(method, body)
            else:
                self.forward(method, body)

        def apply(self, method, body):
            parts = self.path.strip("/").split("/")
            if len(parts) < 2 or parts[0] != "kv":
                return self.answer(400, {"error": f"no such path {self.path}"})
            key = parts[1]
            with store.lock:
                if method == "GET":
                    if key not in store.state:
                        return self.answer(404, {"error": "not found"})
                    return self.answer(200, {"value": store.state[key]})
                if method == "PUT":
                    change = {key: body["value"]}
                elif key not in store.state:
                    return self.answer(404, {"error": "not found"})
                elif store.state[key] != body["from"]:
                    return self.answer(409, {"error": f"value is {store.state[key]}"})
                else:
                    change = {key: body["to"]}
                store.state.update(change)
                store.save()
            if args.stale_reads:
                threading.Thread(target=push, args=(change,), daemon=True).start()
            self.answer(200, {})

        def forward(self, method, body):
            conn = http.client.HTTPConnection(*primary[1], timeout=2.0)
            try:
                try:
                    conn.connect()
                except OSError as e:
                    return self.answer(421, {"error": f"primary unreachable: {e}"})
                try:
                    conn.request(method, self.path, body=None if body is None else json.dumps(body))
                    reply = conn.getresponse()
                    status, data = reply.status, reply.read()
                except (OSError, http.client.HTTPException) as e:
                    return self.answer(502, {"error": f"primary did not answer: {e}"})
                self.answer(status, json.loads(data or b"{}"))
            finally:
                conn.close()

    def push(change):
        for _, address in backups:
            conn = http.client.HTTPConnection(*address, timeout=1.0)
            try:
                conn.request("POST", "/copy", body=json.dumps(change))
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                pass  # lost: the backup's copy stays behind
            finally:
                conn.close()

    return Handler


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--node", required=True)
    p.add_argument("--listen", required=True)
    p.add_argument("--peers", required=True, help="n1=ADDR:PORT,... (the first is the primary)")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--stale-reads", action="store_true")
    args = p.parse_args()
    peers = []
    for item in args.peers.split(","):
        name, _, address = item.partition("=")
        host, _, port = address.rpartition(":")
        peers.append((name, (host, int(port))))
    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), make_handler(
        args, Store(args.data_dir), peers[0], [p for p in peers[1:] if p[0] != args.node]))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
