"""Who owns a test's resources: the controller process, recorded before anything is made.

A local or docker test writes OWNERS_DIR/<test id>.json before it creates its first namespace and
removes it after it has removed its last:

    {"test_id": "3fa2c1", "controller": {"pid": 4242, "start": 1234567},
     "netns": [...], "link_tag": "tec1a2b3c", "chain_tag": "tectonic-1a2b3c", "dirs": [...],
     "subnet": "10.180.3.0/24", "docker": false}

`start` is the process's start time in clock ticks since boot (/proc/<pid>/stat, field 22):
a pid alone can be reused by an unrelated process after the controller died, the pair
cannot. So `tectonic clean` can tell a live test's resources (leave them) from a dead
one's (remove them), even when many tests run side by side on one host.

The records live under /run, the same tmpfs as /run/netns: they go away at reboot with the
namespaces they describe, and a test inside a user namespace (its own /run) keeps its
records to itself, as it keeps its namespaces.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from .netns import ClusterError

OWNERS_DIR = "/run/tectonic/owners"


@dataclass
class OwnerRecord:
    test_id: str
    pid: int
    start: int
    netns: list[str] = field(default_factory=list)
    link_tag: str = ""
    chain_tag: str = ""
    dirs: list[str] = field(default_factory=list)
    subnet: str | None = None   # the cluster's /24, once chosen (no other live test takes it)
    docker: bool = False        # its nodes are containers of tectonic's docker engine

    def alive(self) -> bool:
        """Is the controller that wrote this record still running?"""
        return process_start(self.pid) == self.start

    def to_json(self) -> dict:
        return {"test_id": self.test_id, "controller": {"pid": self.pid, "start": self.start},
                "netns": self.netns, "link_tag": self.link_tag, "chain_tag": self.chain_tag,
                "dirs": self.dirs, "subnet": self.subnet, "docker": self.docker}


def process_start(pid: int) -> int | None:
    """The start time of process pid (clock ticks since boot), None when there is none
    (or only a zombie, which will never release anything)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            # The command name (field 2) may hold spaces and parentheses: split after it.
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def claim(test_id: str, *, netns: list[str], link_tag: str, chain_tag: str,
          dirs: list[str], subnet: str | None = None, docker: bool = False,
          owners_dir: str = OWNERS_DIR) -> OwnerRecord:
    """Record this process as the owner of test_id's resources (before creating them).

    Raises ClusterError when another live controller owns test_id: its record, and what
    it names, must survive this attempt."""
    pid = os.getpid()
    for other in records(owners_dir):
        if other.test_id == test_id and other.pid != pid and other.alive():
            raise ClusterError(f"test id {test_id!r} is in use by the running controller pid "
                               f"{other.pid}")
    record = OwnerRecord(test_id, pid, process_start(pid), list(netns), link_tag, chain_tag,
                         [os.path.abspath(d) for d in dirs], subnet, docker)
    os.makedirs(owners_dir, exist_ok=True)
    path = _path(test_id, owners_dir)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(record.to_json(), f)
    os.replace(path + ".tmp", path)  # readers see the whole record or none
    return record


def release(test_id: str, owners_dir: str = OWNERS_DIR) -> None:
    """Forget test_id's record (after its resources are gone)."""
    try:
        os.remove(_path(test_id, owners_dir))
    except FileNotFoundError:
        pass


def records(owners_dir: str = OWNERS_DIR) -> list[OwnerRecord]:
    """Every readable record; a torn or foreign file is skipped (it owns nothing)."""
    try:
        names = sorted(os.listdir(owners_dir))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(owners_dir, name), encoding="utf-8") as f:
                data = json.load(f)
            found.append(OwnerRecord(data["test_id"], int(data["controller"]["pid"]),
                                     data["controller"]["start"], list(data["netns"]),
                                     data["link_tag"], data["chain_tag"], list(data["dirs"]),
                                     data.get("subnet"), bool(data.get("docker"))))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def _path(test_id: str, owners_dir: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in test_id)
    return os.path.join(owners_dir, f"{safe}.json")
