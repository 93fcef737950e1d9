#!/usr/bin/env python3
"""A correct Maelstrom lin-kv and txn-list-append node, for tectonic's tests: a fixed primary.

The first node of init's node_ids is the primary and the only holder of the state; every
other node forwards each client request to it and relays the answer back. One process, one
thread, requests applied in the order they arrive: linearizable, whatever the network does
(a request or answer lost in a partition leaves the client without a reply, which it must
take as indefinite). The state is saved to state.json in the working directory after every
change, before the answer, so a killed and restarted primary has lost nothing it answered
(a write the kernel has taken survives a SIGKILL; no fsync needed for that fault).

Only the Python standard library: Maelstrom runs this file as any other binary.
"""
import json
import os
import sys

STATE_FILE = "state.json"
KEY_DOES_NOT_EXIST, PRECONDITION_FAILED, NOT_SUPPORTED = 20, 22, 10


class PrimaryKV:
    def __init__(self):
        self.node_id = None
        self.primary = None
        self.backups = []
        self.next_id = 0
        self.forwarded = {}  # our msg_id -> (client, client's msg_id)
        self.state = {}
        if os.path.exists(STATE_FILE):
            with open(STATE_FILE) as f:
                self.state = json.load(f)

    # ---- the wire -----------------------------------------------------------------------

    def send(self, dest, body):
        self.next_id += 1
        body = {**body, "msg_id": self.next_id}
        sys.stdout.write(json.dumps({"src": self.node_id, "dest": dest, "body": body}) + "\n")
        sys.stdout.flush()
        return self.next_id

    def reply(self, msg, body):
        self.send(msg["src"], {**body, "in_reply_to": msg["body"]["msg_id"]})

    def run(self):
        for line in sys.stdin:
            msg = json.loads(line)
            self.handle(msg)

    def handle(self, msg):
        body = msg["body"]
        kind = body["type"]
        if kind == "init":
            self.node_id = body["node_id"]
            self.primary = body["node_ids"][0]
            self.backups = [n for n in body["node_ids"] if n != self.primary]
            self.reply(msg, {"type": "init_ok"})
        elif "in_reply_to" in body and body["in_reply_to"] in self.forwarded:
            client, client_msg_id = self.forwarded.pop(body["in_reply_to"])
            answer = {k: v for k, v in body.items() if k not in ("msg_id", "in_reply_to")}
            self.send(client, {**answer, "in_reply_to": client_msg_id})
        elif kind in ("read", "write", "cas", "txn"):
            self.request(msg)
        else:
            self.other(msg)

    def request(self, msg):
        if self.node_id == self.primary:
            self.reply(msg, self.apply(msg["body"]))
        else:
            self.forward(msg)

    def forward(self, msg):
        body = {k: v for k, v in msg["body"].items() if k != "msg_id"}
        our_id = self.send(self.primary, body)
        self.forwarded[our_id] = (msg["src"], msg["body"]["msg_id"])

    def other(self, msg):
        if "msg_id" in msg["body"]:
            self.reply(msg, {"type": "error", "code": NOT_SUPPORTED,
                             "text": f"unknown message type {msg['body']['type']}"})

    # ---- the state machine (primary only) ------------------------------------------------

    def apply(self, body):
        kind, key = body["type"], str(body.get("key"))
        if kind == "read":
            if key not in self.state:
                return {"type": "error", "code": KEY_DOES_NOT_EXIST, "text": "not found"}
            return {"type": "read_ok", "value": self.state[key]}
        if kind == "write":
            self.changed({key: body["value"]})
            return {"type": "write_ok"}
        if kind == "cas":
            if key not in self.state:
                return {"type": "error", "code": KEY_DOES_NOT_EXIST, "text": "not found"}
            if self.state[key] != body["from"]:
                return {"type": "error", "code": PRECONDITION_FAILED,
                        "text": f"expected {body['from']}, had {self.state[key]}"}
            self.changed({key: body["to"]})
            return {"type": "cas_ok"}
        done, changes = [], {}
        for f, k, v in body["txn"]:
            current = changes.get(str(k), self.state.get(str(k), []))
            if f == "r":
                done.append([f, k, list(current)])
            else:
                changes[str(k)] = [*current, v]
                done.append([f, k, v])
        if changes:
            self.changed(changes)
        return {"type": "txn_ok", "txn": done}

    def changed(self, changes):
        self.state.update(changes)
        with open(STATE_FILE + ".tmp", "w") as f:
            json.dump(self.state, f)
        os.replace(STATE_FILE + ".tmp", STATE_FILE)


if __name__ == "__main__":
    PrimaryKV().run()
