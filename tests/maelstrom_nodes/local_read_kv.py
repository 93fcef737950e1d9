#!/usr/bin/env python3
"""A deliberately wrong Maelstrom lin-kv node, for tectonic's tests: reads served locally.

Like primary_kv.py (writes and cas go to the fixed primary), except that the primary tells
every backup each change as it makes it, without waiting for them, and a backup answers
reads from its own copy. Cut off from the primary, a backup keeps answering with values the
primary has long replaced: stale reads, which a linearizability checker must catch.
"""
from primary_kv import PrimaryKV


class LocalReadKV(PrimaryKV):
    def request(self, msg):
        if msg["body"]["type"] == "read" and self.node_id != self.primary:
            self.reply(msg, self.apply(msg["body"]))  # our copy, however old
        else:
            super().request(msg)

    def other(self, msg):
        if msg["body"]["type"] == "copy":
            self.state.update(msg["body"]["changes"])
        else:
            super().other(msg)

    def changed(self, changes):
        super().changed(changes)
        if self.node_id == self.primary:
            for backup in self.backups:
                self.send(backup, {"type": "copy", "changes": changes})


if __name__ == "__main__":
    LocalReadKV().run()
