"""The docker backend: each node a container on a private bridge network.

For test T with nodes n1..nN in subnet S (a free private /24, chosen as the local backend
chooses, or backend_opts.network):

    controller (host) S.254 --+-- bridge <short tag>-dk, one per test, on tectonic's dockerd
    tectonic-T-n1 (S.1)    ---+
    ...                       |
    tectonic-T-nN (S.N)    ---+

The engine is tectonic's own dockerd (docker_daemon.py: no firewall rules, no NAT), started
when none answers and stopped again at destroy when it was started here and no other test's
container is left. The image is built on first use (docker_image.py). Each container runs
with NET_ADMIN, so the nemeses' iptables and tc work inside it as on a host, and holds a copy
of the packages of the Python modules the target runs on its nodes (NodeNeeds) under
PYTHON_DIR, which node.pythonpath names. Clock faults are refused: containers share the
host's kernel clock.

backend_opts: image (default tectonic-node:bookworm), network (a subnet, e.g. 10.199.0.0/24),
docker_host (use this engine, e.g. unix:///var/run/docker.sock, instead of tectonic's own).
"""
from __future__ import annotations

import ipaddress
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor

from core.errors import SetupError
from harness.protocols import Node, NodeNeeds, RemoteError

from . import owners, python_upload
from .docker_clean import LABEL, TEST_LABEL
from .docker_daemon import HOST, DockerDaemon, DockerUnavailable, answers, client_for
from .docker_image import DEFAULT_IMAGE, ImageError, ensure_image
from .docker_remote import DockerRemote, explain
from .guard_route import add_guard_route, remove_guard_route
from .names import ClusterNames, short_tag
from .netns import ClusterError

log = logging.getLogger("tectonic.control")

OPTIONS = ("image", "network", "docker_host")
PYTHON_DIR = "/opt/tectonic/python"
NODE_PYTHON = "/usr/bin/python3"
NODE_DIR_ROOT = "/var/lib/tectonic"
CONTROLLER_HOST = 254
CLOCK_REFUSAL = ("the docker backend cannot inject clock faults: containers share the "
                 "host's kernel clock; drop 'clock' from --nemesis, or use the local or ssh backend")


class DockerClusterError(SetupError):
    """The docker cluster cannot be made or removed; one line for the user (exit 254)."""


class DockerCluster:
    """Nodes n1..n<node_count> as containers; `destroy` removes all of it.

    Usable as a context manager, like LocalCluster.
    """

    def __init__(self, test_id: str, node_count: int, *, image: str = DEFAULT_IMAGE,
                 network: str | None = None, docker_host: str | None = None,
                 needs: NodeNeeds = NodeNeeds()):
        self.names = ClusterNames(test_id, node_count)
        self.needs = needs
        self.image = image
        self.subnet = _parse_subnet(network) if network else None
        self.docker_host = docker_host
        self.controller_address: str | None = None
        self.nodes: list[Node] = []
        self.image_build_seconds: float | None = None
        self._daemon = DockerDaemon()
        self._client = None
        # Only what this instance created is removed by destroy().
        self._containers: list[str] = []
        self._network: str | None = None
        self._guarded = None  # the subnet whose guard route (guard_route.py) this instance added
        self._claimed = False  # whether this instance wrote the test's owner record (owners.py)

    @property
    def network_name(self) -> str:
        return self.names.prefix

    @property
    def bridge_name(self) -> str:
        # The short tag `tectonic clean` already recognises links by: a bridge left by a
        # crashed engine is found and removed like the local backend's links.
        return f"{short_tag(self.names.test_id)}-dk"

    def container_name(self, node: str) -> str:
        return f"{self.names.prefix}-{node}"

    def create(self) -> list[Node]:
        if self._containers or self._network:
            raise DockerClusterError(f"cluster {self.names.prefix} is already created")
        try:
            self._create()
        except BaseException as e:
            try:
                self.destroy()
            except DockerClusterError as teardown_error:  # the first error is the one to report
                log.error("%s", teardown_error)
            if _is_engine_error(e):
                raise DockerClusterError(f"docker cluster {self.names.prefix}: "
                                         f"{explain(e)}") from e
            raise
        return self.nodes

    def destroy(self) -> None:
        """Remove the containers (with their volumes) and the network, then stop the
        engine if it was started here and no other test uses it. Idempotent."""
        errors = []
        client = self._client
        for name in list(self._containers):
            try:
                client.api.remove_container(name, force=True, v=True)
                self._containers.remove(name)
            except Exception as e:  # noqa: BLE001 - remove what can be removed; say the rest
                if _is_not_found(e):
                    self._containers.remove(name)
                else:
                    errors.append(f"container {name}: {e}")
        if self._network:
            try:
                client.api.remove_network(self._network)
                self._network = None
            except Exception as e:  # noqa: BLE001
                if _is_not_found(e):
                    self._network = None
                else:
                    errors.append(f"network {self._network}: {e}")
        if self._guarded is not None and self._network is None:
            try:
                remove_guard_route(self._guarded)
                self._guarded = None
            except ClusterError as e:
                errors.append(str(e))
        self.nodes = []
        if self._daemon.started_here:
            self._stop_daemon_unless_in_use(client, errors)
        if client is not None:
            client.close()
            self._client = None
        if errors:
            raise DockerClusterError("docker teardown: " + "; ".join(errors))
        if self._claimed:  # only now: a record must outlive anything it names
            owners.release(self.names.test_id)
            self._claimed = False

    def vanished(self) -> list[str]:
        """The containers of this cluster that are gone or no longer running."""
        gone = []
        for name in self._containers:
            try:
                if not self._client.api.inspect_container(name)["State"]["Running"]:
                    gone.append(f"container {name} (stopped)")
            except Exception as e:  # noqa: BLE001 - the engine's NotFound, or the engine itself gone
                gone.append(f"container {name} ({'removed' if _is_not_found(e) else e})")
        return gone

    def _stop_daemon_unless_in_use(self, client, errors: list[str]) -> None:
        # Another test may have found the engine running and be using it; and containers
        # that would not go away stay for `tectonic clean`, which needs the engine.
        try:
            in_use = client is not None and bool(
                client.api.containers(all=True, filters={"label": LABEL}))
        except Exception as e:  # noqa: BLE001
            errors.append(f"listing containers: {e}")
            return
        if not in_use:
            self._daemon.stop()

    def __enter__(self) -> DockerCluster:
        self.create()
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()

    # ---- creation ------------------------------------------------------------------------

    def _create(self) -> None:
        # Before the engine is asked for anything: `tectonic clean` must never see this
        # test's containers without their live owner.
        owners.claim(self.names.test_id, netns=[], link_tag=short_tag(self.names.test_id),
                     chain_tag="", dirs=[], docker=True)
        self._claimed = True
        self._client = self._connect()
        try:
            self.image_build_seconds = ensure_image(self._client, self.image)
        except ImageError as e:
            raise DockerClusterError(str(e)) from None
        self._create_network()
        for index, name in enumerate(self.names.node_names, start=1):
            self._create_container(name, str(self.subnet.network_address + index))
        try:
            project = python_upload.bundle(self.needs, gzip=False) if self.needs.python_modules else None
        except ModuleNotFoundError as e:
            raise DockerClusterError(f"the target runs Python modules on its nodes: {e}") from None
        with ThreadPoolExecutor(max_workers=len(self.names.node_names)) as pool:
            for future in [pool.submit(self._prepare, name, index, project)
                           for index, name in enumerate(self.names.node_names, start=1)]:
                self.nodes.append(future.result())
        log.info("docker cluster %s: %d containers of %s in %s, controller %s",
                 self.names.prefix, len(self.nodes), self.image, self.subnet,
                 self.controller_address)

    def _connect(self):
        if self.docker_host:
            if not answers(self.docker_host):
                raise DockerClusterError(f"no Docker engine answers at {self.docker_host} "
                                         f"(backend_opts.docker_host)")
            return client_for(self.docker_host)
        try:
            self._daemon.ensure()
        except DockerUnavailable as e:
            raise DockerClusterError(str(e)) from None
        return client_for(HOST)

    def _create_network(self) -> None:
        from docker.types import IPAMConfig, IPAMPool

        from .local import _subnet_lock
        from .subnet import choose_subnet, taken_networks
        # Held until the bridge claims the subnet on the host, so a local test starting
        # at the same time cannot pick it too.
        with _subnet_lock():
            taken = taken_networks()
            if self.subnet is None:
                self.subnet = choose_subnet(self.names.test_id, taken)
            elif any(self.subnet.overlaps(net) for net in taken):
                raise DockerClusterError(f"backend_opts.network {self.subnet} overlaps a network "
                                         f"this host already has an address or route for")
            self.controller_address = str(self.subnet.network_address + CONTROLLER_HOST)
            ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(self.subnet),
                                                     gateway=self.controller_address)])
            self._client.api.create_network(
                self.network_name, driver="bridge", ipam=ipam,
                options={"com.docker.network.bridge.name": self.bridge_name},
                labels={LABEL: "1", TEST_LABEL: self.names.test_id})
            self._network = self.network_name
            add_guard_route(self.subnet)
            self._guarded = self.subnet

    def _create_container(self, name: str, address: str) -> None:
        api = self._client.api
        container = self.container_name(name)
        host_config = api.create_host_config(cap_add=["NET_ADMIN"], init=True,
                                             network_mode=self.network_name)
        networking = api.create_networking_config(
            {self.network_name: api.create_endpoint_config(ipv4_address=address)})
        api.create_container(self.image, name=container, hostname=name, detach=True,
                             host_config=host_config, networking_config=networking,
                             labels={LABEL: "1", TEST_LABEL: self.names.test_id})
        self._containers.append(container)
        api.start(container)

    def _prepare(self, name: str, index: int, project: bytes | None) -> Node:
        container = self.container_name(name)
        remote = DockerRemote(self._client.api, container)
        node_dir = f"{NODE_DIR_ROOT}/{name}"
        remote.exec(["mkdir", "-p", node_dir])
        if project is not None:
            remote.exec(["mkdir", "-p", PYTHON_DIR])
            self._client.api.put_archive(container, PYTHON_DIR, project)
            check = remote.exec(python_upload.import_check(NODE_PYTHON, PYTHON_DIR, self.needs),
                                check=False, timeout=60)
            if check.returncode != 0:
                last_line = (check.stderr.strip().splitlines() or ["no output"])[-1]
                raise DockerClusterError(f"container {container}: {NODE_PYTHON} cannot import "
                                         f"the target's {', '.join(self.needs.python_modules)} "
                                         f"({last_line}): use an image with python3 (>= 3.9)")
        return Node(name=name, address=str(self.subnet.network_address + index),
                    remote=remote, dir=node_dir, backend="docker", python=NODE_PYTHON,
                    pythonpath=(PYTHON_DIR,) if project is not None else ())


def make_cluster(spec: dict, work_dir: str, needs: NodeNeeds = NodeNeeds()) -> DockerCluster:
    """The docker backend's cluster for a resolved spec; refuses what it cannot do before
    anything is created."""
    if "clock" in spec.get("nemesis", []):
        raise SetupError(CLOCK_REFUSAL)
    opts = dict(spec.get("backend_opts") or {})
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise SetupError(f"backend_opts.{unknown[0]} is not an option of the docker backend "
                         f"(it takes: {', '.join(OPTIONS)})")
    for key in OPTIONS:
        if key in opts and not isinstance(opts[key], str):
            raise SetupError(f"backend_opts.{key} must be a string, got {opts[key]!r}")
    return DockerCluster(secrets.token_hex(3), spec["node_count"],
                         image=opts.get("image", DEFAULT_IMAGE), network=opts.get("network"),
                         docker_host=opts.get("docker_host"), needs=needs)


def _parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        subnet = ipaddress.IPv4Network(text)
    except ValueError as e:
        raise SetupError(f"backend_opts.network: not an IPv4 subnet: {e}") from None
    if subnet.prefixlen != 24 or not subnet.is_private:
        raise SetupError(f"backend_opts.network must be a private /24 (e.g. 10.199.0.0/24), "
                         f"got {text}")
    return subnet


def _is_not_found(error: Exception) -> bool:
    import docker
    return isinstance(error, docker.errors.NotFound)


def _is_engine_error(error: BaseException) -> bool:
    """An error of the engine or of reaching it: the user's to fix, said in one line."""
    import docker
    import requests
    return isinstance(error, (docker.errors.DockerException, requests.RequestException,
                              RemoteError, ClusterError))

