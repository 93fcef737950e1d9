"""Real SSH hosts on this machine, for the tests and bench/backends.py: OpenSSH servers
(Debian's openssh-server) inside the local backend's network namespaces, with a throwaway
client key, host key and known_hosts of their own, so host-key checking stays on."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager

SSHD = "/usr/sbin/sshd"


def wait_for(predicate, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Keys:
    """A throwaway client key, host key and known_hosts in one directory."""

    def __init__(self, directory):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.client = os.path.join(self.dir, "client_key")
        self.host = os.path.join(self.dir, "host_key")
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        for path in (self.client, self.host):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
        shutil.copy(self.client + ".pub", os.path.join(self.dir, "authorized_keys"))

    def trust(self, address: str, port: int = 22, host_key: str | None = None) -> None:
        entry = address if port == 22 else f"[{address}]:{port}"
        with open(host_key or self.host + ".pub") as f:
            kind, key = f.read().split()[:2]
        with open(self.known_hosts, "a") as f:
            f.write(f"{entry} {kind} {key}\n")


@contextmanager
def sshd(keys: Keys, address: str, port: int = 22, netns: str | None = None, tag: str = "sshd"):
    """An OpenSSH server on address:port (inside netns when given) that lets root in with
    the client key alone; stopped on exit."""
    os.makedirs("/run/sshd", exist_ok=True)  # its privilege-separation directory
    config, pidfile = os.path.join(keys.dir, f"{tag}_config"), os.path.join(keys.dir, f"{tag}.pid")
    with open(config, "w") as f:
        f.write(f"Port {port}\nListenAddress {address}\nHostKey {keys.host}\nPidFile {pidfile}\n"
                f"AuthorizedKeysFile {keys.dir}/authorized_keys\nPermitRootLogin prohibit-password\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                "StrictModes no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n")
    prefix = ["ip", "netns", "exec", netns] if netns else []
    subprocess.run([*prefix, SSHD, "-f", config, "-E", os.path.join(keys.dir, f"{tag}.log")],
                   check=True, timeout=10)
    try:
        if not wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip()):
            raise RuntimeError(f"sshd on {address}:{port} wrote no pidfile (log: {keys.dir}/{tag}.log)")
        yield
    finally:
        try:
            os.kill(int(open(pidfile).read()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


@contextmanager
def sshd_hosts(directory, count: int):
    """`count` hosts: the local backend's namespaces, each running its own sshd on port 22
    of its address, with their host keys in a known_hosts file.
    Yields (addresses, keys, namespaces)."""
    import secrets
    from harness.control.local import LocalCluster
    keys = Keys(os.path.join(directory, "keys"))
    cluster = LocalCluster("ssh" + secrets.token_hex(3), count, os.path.join(directory, "hosts"))
    cluster.create()
    try:
        addresses = [n.address for n in cluster.nodes]
        for address in addresses:
            keys.trust(address)
        namespaces = [cluster.names.node_netns(n.name) for n in cluster.nodes]
        with _all_sshd(keys, list(zip(cluster.nodes, namespaces))):
            yield addresses, keys, namespaces
    finally:
        cluster.destroy()  # also kills whatever is left in the namespaces


@contextmanager
def _all_sshd(keys, nodes_and_namespaces):
    if not nodes_and_namespaces:
        yield
        return
    node, netns = nodes_and_namespaces[0]
    with sshd(keys, node.address, netns=netns, tag=f"sshd-{node.name}"):
        with _all_sshd(keys, nodes_and_namespaces[1:]):
            yield
