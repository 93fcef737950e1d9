"""iptables rules inside a node, kept in one chain per test and fault kind.

Partitions and packet loss drop packets arriving from chosen peers; delay queues packets
leaving for them; duplication copies them. Each nemesis owns a chain (e.g.
tectonic-1a2b3c-partition) jumped to from one built-in chain (INPUT, OUTPUT, or mangle's
POSTROUTING), so healing is exact: remove the jump, flush and delete the chain, and nothing
else on the node is touched. Rules are loaded
with one `iptables-restore --noflush` per node, so a fault lands on a node all at once.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from concurrent.futures import ThreadPoolExecutor

CHAIN_PREFIX = "tectonic"
IPTABLES_WAIT = "5"  # seconds to wait for the xtables lock instead of failing at once

# What a node address may look like when it goes into an iptables-restore file: an IP
# address or a host name, nothing that could start another rule.
_SAFE_ADDRESS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]*$")


def chain_name(kind: str, opts: dict) -> str:
    """The chain for one fault kind of one test: from opts["test_id"] when given, so
    `tectonic clean` can tell tests apart; otherwise unique to this nemesis."""
    test_id = opts.get("test_id")
    tag = (hashlib.sha256(str(test_id).encode()).hexdigest()[:6] if test_id is not None
           else secrets.token_hex(3))
    return f"{CHAIN_PREFIX}-{tag}-{kind}"


def set_drops(node, chain: str, sources: list[str], match: list[str] | None = None) -> None:
    """Make node drop packets from each address in sources (those matching `match`, e.g.
    a statistic match for random loss), replacing whatever the chain held before; with no
    sources, remove the chain."""
    set_chain(node, chain, "INPUT", [["-s", checked_address(a), *(match or []), "-j", "DROP"]
                                     for a in sources])


def set_chain(node, chain: str, parent: str, rules: list[list[str]],
              table: str = "filter") -> None:
    """Make chain (in table, jumped to from the built-in chain parent) hold exactly rules,
    each an argument list after `-A chain`; with no rules, remove the chain."""
    if not rules:
        remove_chain(node, chain, table)
        return
    # Declaring the chain creates it, or flushes it when it exists.
    lines = [f"*{table}", f":{chain} - [0:0]"]
    if f"-A {parent} -j {chain}" not in _rules(node, table):
        lines.append(f"-I {parent} 1 -j {chain}")  # first: no earlier ACCEPT lets packets by
    lines += [" ".join(["-A", chain, *rule]) for rule in rules]
    lines.append("COMMIT")
    node.remote.exec(["iptables-restore", "-w", IPTABLES_WAIT, "--noflush"],
                     input="\n".join(lines) + "\n")


def remove_chain(node, chain: str, table: str = "filter") -> bool:
    """Remove the chain and every jump to it from node; True when there was anything."""
    rules = _rules(node, table)
    jumps = [line for line in rules if line.startswith("-A ") and line.endswith(f" -j {chain}")]
    if not jumps and f"-N {chain}" not in rules:
        return False
    lines = [f"*{table}"] + ["-D" + line[2:] for line in jumps]
    if f"-N {chain}" in rules:
        lines += [f"-F {chain}", f"-X {chain}"]
    lines.append("COMMIT")
    node.remote.exec(["iptables-restore", "-w", IPTABLES_WAIT, "--noflush"],
                     input="\n".join(lines) + "\n")
    return True


def checked_address(address: str) -> str:
    """address, when it is fit to go into an iptables-restore file; else ValueError."""
    if not _SAFE_ADDRESS.match(address):
        raise ValueError(f"node address {address!r} is not an IP address or host name")
    return address


def on_each_node(nodes: list, action) -> list:
    """action(node) on all nodes at once (a partition should land everywhere together);
    the results in node order. Every node is tried; the first error is raised after."""
    if not nodes:
        return []
    with ThreadPoolExecutor(len(nodes), thread_name_prefix="tectonic-firewall") as pool:
        futures = [pool.submit(action, node) for node in nodes]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]
    return [f.result() for f in futures]


def _rules(node, table: str = "filter") -> list[str]:
    return node.remote.exec(["iptables", "-w", IPTABLES_WAIT, "-t", table, "-S"]).stdout.splitlines()
