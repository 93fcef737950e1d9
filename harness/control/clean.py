"""Finding and removing what crashed tests left behind, by name prefix alone.

A controller that dies without running its teardown (SIGKILL, power cut) leaves namespaces,
the processes inside them, its veth and possibly firewall chains. Everything the local
backend and the nemeses create carries PREFIX (links carry the short form), so these are
found without knowing which test made them.
"""
from __future__ import annotations

import shlex
import shutil

from .names import PREFIX, SHORT_LINK_RE
from .netns import (ClusterError, delete_link, delete_netns, kill_netns_processes,
                    link_names, list_netns, netns_pids, process_description, run)


def find_leftovers() -> list[str]:
    """One line per leftover: namespaces, the processes in them, links, iptables chains."""
    found = []
    for netns in _leftover_netns():
        pids = netns_pids(netns)
        found.append(f"namespace {netns}" + (f" ({len(pids)} processes)" if pids else ""))
        found.extend(f"process {process_description(pid)} in namespace {netns}" for pid in pids)
    found.extend(f"link {name}" for name in _leftover_links())
    found.extend(f"iptables chain {chain}" for chain in _leftover_chains())
    return found


def clean() -> list[str]:
    """Remove every leftover; return one line per thing removed."""
    removed = []
    netns_list = _leftover_netns()
    # Processes first: a namespace whose name is gone but which still holds a process
    # lives on, unnamed and unfindable.
    for netns in netns_list:
        removed.extend(f"killed process {process_description(pid)} in namespace {netns}"
                       for pid in netns_pids(netns))
        kill_netns_processes(netns)
    for name in _leftover_links():
        delete_link(name)
        removed.append(f"deleted link {name}")
    for chain in _leftover_chains():
        _delete_chain(chain)
        removed.append(f"deleted iptables chain {chain}")
    for netns in netns_list:
        delete_netns(netns)
        removed.append(f"deleted namespace {netns}")
    return removed


def _leftover_netns() -> list[str]:
    return [n for n in list_netns() if n.startswith(PREFIX + "-")]


def _leftover_links() -> list[str]:
    return [n for n in link_names() if n.startswith(PREFIX) or SHORT_LINK_RE.match(n)]


def _leftover_chains() -> list[str]:
    """Chains with the prefix in the controller's own filter table.

    The nemeses put theirs inside the nodes' namespaces, which go with the namespaces;
    this catches the ones a backend without namespaces (SSH to this host) would leave.
    """
    if shutil.which("iptables") is None:
        return []
    proc = run(["iptables", "-w", "5", "-S"], check=False)
    return [line.split()[1] for line in proc.stdout.splitlines()
            if line.startswith("-N ") and line.split()[1].startswith(PREFIX)]


def _delete_chain(chain: str) -> None:
    for line in run(["iptables", "-w", "5", "-S"]).stdout.splitlines():
        fields = shlex.split(line)
        if fields[:1] == ["-A"] and fields[-2:] == ["-j", chain]:
            run(["iptables", "-w", "5", "-D"] + fields[1:])
    run(["iptables", "-w", "5", "-F", chain])
    proc = run(["iptables", "-w", "5", "-X", chain], check=False)
    if proc.returncode != 0:
        raise ClusterError(f"cannot delete iptables chain {chain}: {proc.stderr.strip()}")
