"""Membership changes: shrink the cluster by removing members one at a time, grow it back.

Through the target's own reconfiguration (the Membership capability: Raft's single-server
configuration change in raftkv, etcd's member API), so what is tested is the system's
reconfiguration under load and under the other faults. The backend deploys every node at
the start; the cluster then shrinks and grows within them, never below a majority of the
deployed nodes (3 of 5, 2 of 3), so a quorum of the original cluster always remains.

start-membership: value None (the rng removes between one member and as many as the floor
allows, any member, the leader included), {"remove": NODE} or {"add": NODE}.
stop-membership (and heal): add back, one at a time, every deployed node that is not a
member. Each op's value lists the changes made, each with the node and the members after
it: {"changes": [{"removed": "n3", "members": [...]}, ...], "members": [...]}; a change the
target could not make ends the list with {"error": ...} (the history then says so, and the
next stop or heal puts the cluster back whatever happened).
"""
from __future__ import annotations

from harness.protocols import Membership

from .choose import majority_size
from .start_stop import StartStopFault

START, STOP = "start-membership", "stop-membership"


class MembershipNemesis(StartStopFault):
    kind = "membership"

    def __init__(self, nodes: list, target, rng, opts: dict):
        if not isinstance(target, Membership):
            raise ValueError(f"membership changes need a target with the Membership "
                             f"capability; {target.name!r} has none")
        if len(nodes) < 3:
            raise ValueError(f"membership changes need at least 3 nodes, got {len(nodes)}")
        self.nodes = list(nodes)
        self.target = target
        self.rng = rng
        self.floor = majority_size(len(nodes))
        self.healed: dict | None = None  # what the last heal added back, when it added any

    def heal(self) -> None:
        value = self.stop()
        self.healed = value if value["changes"] else None

    def _node(self, name: str):
        for node in self.nodes:
            if node.name == name:
                return node
        raise ValueError(f"unknown node {name!r}; the cluster has "
                         f"{', '.join(n.name for n in self.nodes)}")

    def start(self, value) -> dict:
        if isinstance(value, dict) and set(value) <= {"add", "remove"} and len(value) == 1:
            action, name = next(iter(value.items()))
            node = self._node(name)
            return self._changes([(action, node)])
        if value is not None:
            raise ValueError(f"start-membership takes None, {{\"remove\": NODE}} or "
                             f"{{\"add\": NODE}}, got {value!r}")
        members = self.target.members(self.nodes)
        spare = len(members) - self.floor
        if spare <= 0:
            return {"changes": [], "members": members,
                    "skipped": f"at the floor of {self.floor} members"}
        count = self.rng.randint(1, spare)
        chosen = self.rng.sample(members, count)
        return self._changes([("remove", self._node(name)) for name in chosen])

    def stop(self) -> dict:
        members = self.target.members(self.nodes)
        missing = [n for n in self.nodes if n.name not in members]
        value = self._changes([("add", node) for node in missing])
        failed = [c["error"] for c in value["changes"] if "error" in c]
        if failed:
            # A heal must not pass for done: the runner records this op with the error.
            raise MembershipNotRestored(f"{failed[0]} (done before it: {value['changes'][:-1]})")
        return value

    def _changes(self, changes: list) -> dict:
        done = []
        members = None
        for action, node in changes:
            try:
                if action == "add":
                    members = self.target.add_member(node, self.nodes)
                    done.append({"added": node.name, "members": members})
                else:
                    members = self.target.remove_member(node, self.nodes)
                    done.append({"removed": node.name, "members": members})
            except Exception as e:  # recorded: the next stop or heal repairs what is left
                done.append({"error": f"{action} {node.name}: {e}"})
                break
        if members is None:
            members = self.target.members(self.nodes) if not done else None
        return {"changes": done, "members": members}


class MembershipNotRestored(RuntimeError):
    """A stop or heal could not add every node back; what it did is in the message."""
