"""Finding and removing what dead tests left behind, and never what a live test holds.

A controller that dies without running its teardown (SIGKILL, power cut) leaves namespaces,
the processes inside them, its veth, possibly firewall chains and its work directory.
Everything the local backend and the nemeses create carries PREFIX (links carry the short
form), so these are found by name. Which of them are leftovers is decided by ownership
(owners.py): a test records its controller (pid and start time) before it creates anything,
and whatever a record of a running controller names is left alone unless `force` is given.
Names no record claims (from a test that crashed before this model, or a record lost with
its /run) belong to nobody alive and are removed.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil

from . import owners
from .crash_logs import collect_logs
from .docker_clean import docker_leftovers, remove_docker_leftovers
from .names import PREFIX, SHORT_LINK_RE, ClusterNames, chain_tag, short_tag
from .guard_route import guard_routes, orphaned_guard_routes, remove_guard_route
from .netns import (ClusterError, delete_link, delete_netns, kill_netns_processes,
                    link_names, list_netns, netns_pids, process_description, run)


def find_leftovers(test_id: str | None = None, *, force: bool = False) -> list[str]:
    """One line per leftover: namespaces, the processes in them, links, iptables chains,
    work directories of dead tests.

    With test_id, only that test's; without, every dead test's. A live test's resources
    are never listed, unless force (then they are, as clean(force=True) would remove them).
    """
    match = _Matcher(test_id, force)
    found = []
    for netns in match.netns():
        pids = netns_pids(netns)
        found.append(f"namespace {netns}" + (f" ({len(pids)} processes)" if pids else ""))
        found.extend(f"process {process_description(pid)} in namespace {netns}" for pid in pids)
    found.extend(f"link {name}" for name in match.links())
    found.extend(f"iptables chain {chain}" for chain in match.chains())
    found.extend(f"FUSE mount {mount}" for mount in match.mounts())
    found.extend(f"work directory {d}" for d in match.dirs())
    found.extend(f"guard route {net}" for net in _stale_guard_routes(match))
    found.extend(docker_leftovers(test_id, match.live_docker_tests))
    return found


def clean(test_id: str | None = None, *, force: bool = False, docker: bool = True) -> list[str]:
    """Remove every dead test's leftovers (only test_id's when given; a live test's too
    when force); return one line per thing removed, worded as find_leftovers words it.

    docker=False leaves tectonic's docker engine alone (a campaign worker's clean, which
    has nothing there to remove)."""
    match = _Matcher(test_id, force)
    # The guard routes of the links about to go, found while their addresses still say:
    # before the containers, whose removal takes their network's bridge (a link of ours).
    guards = _stale_guard_routes(match)
    removed = remove_docker_leftovers(test_id, match.live_docker_tests) if docker else []
    netns_list = match.netns()
    # Processes first: a namespace whose name is gone but which still holds a process
    # lives on, unnamed and unfindable.
    for netns in netns_list:
        removed.extend(f"process {process_description(pid)} in namespace {netns}"
                       for pid in netns_pids(netns))
        kill_netns_processes(netns)
    for name in match.links():
        delete_link(name)
        removed.append(f"link {name}")
    for net in guards:
        remove_guard_route(net)
        removed.append(f"guard route {net}")
    for chain in match.chains():
        _delete_chain(chain)
        removed.append(f"iptables chain {chain}")
    for netns in netns_list:
        delete_netns(netns)
        removed.append(f"namespace {netns}")
    # After the processes: a lazy disk's filesystem process is gone, its mount is not.
    for mount in match.mounts():
        _unmount(mount)
        removed.append(f"FUSE mount {mount}")
    for d in match.dirs():
        removed.extend(f"collected {line}" for line in collect_logs(d))
        shutil.rmtree(d, ignore_errors=True)
        removed.append(f"work directory {d}")
    for record in match.released:
        owners.release(record.test_id)
    return removed


def _stale_guard_routes(match: "_Matcher") -> list:
    """Guard routes (guard_route.py) that clean removes: those of the matched links, and,
    for every test's clean, those no link holds an address for any more."""
    nets = set(_link_subnets(match.links()) & set(guard_routes()))
    if match.every_test:
        nets.update(orphaned_guard_routes())
    return sorted(nets)


def _link_subnets(links: list[str]) -> set:
    import ipaddress
    nets = set()
    for name in links:
        for line in run(["ip", "-4", "-o", "addr", "show", "dev", name], check=False).stdout.splitlines():
            fields = line.split()
            if "inet" in fields:
                nets.add(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
    return nets


def live_tests(test_id: str | None = None) -> list[str]:
    """One line per running test whose resources clean leaves alone (only test_id's)."""
    return [f"test {r.test_id} (controller pid {r.pid}): {len(r.netns)} namespaces"
            for r in owners.records() if r.alive() and test_id in (None, r.test_id)]


class _Matcher:
    """Recognises leftovers by name (any test's, or exactly one test's), minus what a
    live controller owns."""

    def __init__(self, test_id: str | None, force: bool):
        self.every_test = test_id is None
        if test_id is None:
            self.netns_re = re.compile(rf"^{PREFIX}-")
            self.link_re = re.compile(rf"^{PREFIX}|{SHORT_LINK_RE.pattern}")
            self.chain_re = re.compile(rf"^{PREFIX}-")
        else:
            # Exact forms, so that test "a" never claims test "a-b"'s namespaces.
            prefix = re.escape(ClusterNames(test_id, 1).prefix)
            self.netns_re = re.compile(rf"^{prefix}-(switch|n[0-9]+)$")
            self.link_re = re.compile(rf"^{short_tag(test_id)}-")
            self.chain_re = re.compile(rf"^{chain_tag(test_id)}-")
        mine = [r for r in owners.records() if test_id in (None, r.test_id)]
        live = [] if force else [r for r in owners.records() if r.alive()]
        self.released = [r for r in mine if force or not r.alive()]
        self._kept_netns = {n for r in live for n in r.netns}
        # Their containers and networks stay, and so does the engine they run on.
        self.live_docker_tests = frozenset(r.test_id for r in live if r.docker)
        self._kept_links = tuple(f"{r.link_tag}-" for r in live if r.link_tag)
        self._kept_chains = tuple(f"{r.chain_tag}-" for r in live if r.chain_tag)

    def netns(self) -> list[str]:
        return [n for n in list_netns() if self.netns_re.match(n) and n not in self._kept_netns]

    def links(self) -> list[str]:
        return [n for n in link_names()
                if self.link_re.match(n) and not n.startswith(self._kept_links)]

    def chains(self) -> list[str]:
        """Chains in the controller's own filter table.

        The nemeses put theirs inside the nodes' namespaces, which go with the namespaces;
        this catches the ones a backend without namespaces (SSH to this host) would leave.
        """
        if shutil.which("iptables") is None:
            return []
        proc = run(["iptables", "-w", "5", "-S"], check=False)
        names = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("-N ")]
        return [c for c in names if self.chain_re.match(c) and not c.startswith(self._kept_chains)]

    def mounts(self) -> list[str]:
        """Mount points of the disk fault's lazy filesystems, named '<chain tag>-disk'
        (nemesis/disk.py) in the controller's mount table."""
        try:
            with open("/proc/self/mounts") as f:
                lines = [line.split() for line in f]
        except OSError:
            return []
        return [_unescape(fields[1]) for fields in lines
                if len(fields) > 2 and fields[2].startswith("fuse") and fields[0].endswith("-disk")
                and self.chain_re.match(fields[0]) and not fields[0].startswith(self._kept_chains)]

    def dirs(self) -> list[str]:
        """The work directories (the nodes' data dirs) of dead tests' records."""
        return [d for r in self.released for d in r.dirs
                if os.path.isabs(d) and os.path.dirname(d) != d and os.path.isdir(d)]


def _unescape(field: str) -> str:
    """A /proc/self/mounts field as a path (spaces and the like are octal escapes)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _unmount(mount: str) -> None:
    proc = run(["umount", "-l", mount], check=False)
    if proc.returncode != 0 and os.path.ismount(mount):
        raise ClusterError(f"cannot unmount {mount}: {proc.stderr.strip()}")


def _delete_chain(chain: str) -> None:
    for line in run(["iptables", "-w", "5", "-S"]).stdout.splitlines():
        fields = shlex.split(line)
        if fields[:1] == ["-A"] and fields[-2:] == ["-j", chain]:
            run(["iptables", "-w", "5", "-D"] + fields[1:])
    run(["iptables", "-w", "5", "-F", chain])
    proc = run(["iptables", "-w", "5", "-X", chain], check=False)
    if proc.returncode != 0:
        raise ClusterError(f"cannot delete iptables chain {chain}: {proc.stderr.strip()}")
