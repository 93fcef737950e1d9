"""Finding and removing what crashed tests left behind, by name prefix alone.

A controller that dies without running its teardown (SIGKILL, power cut) leaves namespaces,
the processes inside them, its veth and possibly firewall chains. Everything the local
backend and the nemeses create carries PREFIX (links carry the short form), so these are
found without knowing which test made them.
"""
from __future__ import annotations

import hashlib
import re
import shlex
import shutil

from .docker_clean import docker_leftovers, remove_docker_leftovers
from .names import PREFIX, SHORT_LINK_RE, ClusterNames, short_tag
from .netns import (ClusterError, delete_link, delete_netns, kill_netns_processes,
                    link_names, list_netns, netns_pids, process_description, run)


def find_leftovers(test_id: str | None = None) -> list[str]:
    """One line per leftover: namespaces, the processes in them, links, iptables chains.

    With test_id, only that test's; without, every test's (which includes tests running
    right now: call it before a test starts, or when none runs).
    """
    match = _Matcher(test_id)
    found = []
    for netns in match.netns():
        pids = netns_pids(netns)
        found.append(f"namespace {netns}" + (f" ({len(pids)} processes)" if pids else ""))
        found.extend(f"process {process_description(pid)} in namespace {netns}" for pid in pids)
    found.extend(f"link {name}" for name in match.links())
    found.extend(f"iptables chain {chain}" for chain in match.chains())
    found.extend(docker_leftovers(test_id))
    return found


def clean(test_id: str | None = None) -> list[str]:
    """Remove every leftover (only test_id's when given); return one line per thing
    removed, worded as find_leftovers words it."""
    match = _Matcher(test_id)
    # Containers first: removing them removes their network's bridge, a link of ours.
    removed = remove_docker_leftovers(test_id)
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
    for chain in match.chains():
        _delete_chain(chain)
        removed.append(f"iptables chain {chain}")
    for netns in netns_list:
        delete_netns(netns)
        removed.append(f"namespace {netns}")
    return removed


class _Matcher:
    """Recognises leftovers by name: any test's, or exactly one test's."""

    def __init__(self, test_id: str | None):
        if test_id is None:
            self.netns_re = re.compile(rf"^{PREFIX}-")
            self.link_re = re.compile(rf"^{PREFIX}|{SHORT_LINK_RE.pattern}")
            self.chain_re = re.compile(rf"^{PREFIX}-")
        else:
            # Exact forms, so that test "a" never claims test "a-b"'s namespaces.
            prefix = re.escape(ClusterNames(test_id, 1).prefix)
            self.netns_re = re.compile(rf"^{prefix}-(switch|n[0-9]+)$")
            self.link_re = re.compile(rf"^{short_tag(test_id)}-")
            # The nemeses tag their chains with the same hash of the test id.
            tag = hashlib.sha256(test_id.encode()).hexdigest()[:6]
            self.chain_re = re.compile(rf"^{PREFIX}-{tag}-")

    def netns(self) -> list[str]:
        return [n for n in list_netns() if self.netns_re.match(n)]

    def links(self) -> list[str]:
        return [n for n in link_names() if self.link_re.match(n)]

    def chains(self) -> list[str]:
        """Chains in the controller's own filter table.

        The nemeses put theirs inside the nodes' namespaces, which go with the namespaces;
        this catches the ones a backend without namespaces (SSH to this host) would leave.
        """
        if shutil.which("iptables") is None:
            return []
        proc = run(["iptables", "-w", "5", "-S"], check=False)
        return [line.split()[1] for line in proc.stdout.splitlines()
                if line.startswith("-N ") and self.chain_re.match(line.split()[1])]


def _delete_chain(chain: str) -> None:
    for line in run(["iptables", "-w", "5", "-S"]).stdout.splitlines():
        fields = shlex.split(line)
        if fields[:1] == ["-A"] and fields[-2:] == ["-j", chain]:
            run(["iptables", "-w", "5", "-D"] + fields[1:])
    run(["iptables", "-w", "5", "-F", chain])
    proc = run(["iptables", "-w", "5", "-X", chain], check=False)
    if proc.returncode != 0:
        raise ClusterError(f"cannot delete iptables chain {chain}: {proc.stderr.strip()}")
