"""Names of everything the local backend creates, all derived from the test id.

Every namespace, link and chain carries the prefix, so `tectonic clean` can find what a
crashed test left behind by name alone. Namespace names can be long (they are files under
/run/netns); interface names cannot (IFNAMSIZ: 15 characters), so links use a short form:
SHORT_PREFIX plus six hex digits of the test id's hash.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

PREFIX = "tectonic"
SHORT_PREFIX = "tec"
IFNAMSIZ = 15
MAX_NODES = 200

# Recognises the links of any test (for leftovers), not only of one.
SHORT_LINK_RE = re.compile(rf"^{SHORT_PREFIX}[0-9a-f]{{6}}-")

_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_SLUG_MAX = 40


def short_tag(test_id: str) -> str:
    """The test's tag inside interface names, e.g. 'tec1f2e3d'."""
    return SHORT_PREFIX + hashlib.sha256(test_id.encode()).hexdigest()[:6]


def chain_tag(test_id: str) -> str:
    """What the nemeses' iptables chains of this test start with (nemesis/firewall.py
    names them '<tag>-<fault kind>'), e.g. 'tectonic-1f2e3d'."""
    return f"{PREFIX}-{hashlib.sha256(test_id.encode()).hexdigest()[:6]}"


@dataclass(frozen=True)
class ClusterNames:
    """The names one test's cluster uses."""
    test_id: str
    node_count: int

    def __post_init__(self):
        if not isinstance(self.test_id, str) or not self.test_id.strip():
            raise ValueError(f"test id must be a non-empty string, got {self.test_id!r}")
        if not isinstance(self.node_count, int) or not 1 <= self.node_count <= MAX_NODES:
            raise ValueError(f"node count must be an integer from 1 to {MAX_NODES}, "
                             f"got {self.node_count!r}")

    @property
    def prefix(self) -> str:
        """'tectonic-<id>': starts every namespace name of this test."""
        slug = _SLUG_UNSAFE.sub("-", self.test_id.strip())[:_SLUG_MAX].strip("-.") or "x"
        return f"{PREFIX}-{slug}"

    @property
    def short(self) -> str:
        return short_tag(self.test_id)

    @property
    def node_names(self) -> list[str]:
        return [f"n{i}" for i in range(1, self.node_count + 1)]

    @property
    def switch_netns(self) -> str:
        return f"{self.prefix}-switch"

    def node_netns(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    @property
    def all_netns(self) -> list[str]:
        return [self.switch_netns] + [self.node_netns(n) for n in self.node_names]

    @property
    def bridge(self) -> str:
        return self._link("br")

    @property
    def controller_link(self) -> str:
        """The controller's end of its veth, in the controller's namespace."""
        return self._link("c")

    @property
    def controller_port(self) -> str:
        """The switch's end of the controller's veth (a bridge port)."""
        return self._link("cs")

    def node_link(self, node: str) -> str:
        """The node's end of its veth, inside the node's namespace."""
        return self._link(node)

    def node_port(self, node: str) -> str:
        """The switch's end of a node's veth (a bridge port)."""
        return self._link("s" + node[1:])

    def _link(self, suffix: str) -> str:
        name = f"{self.short}-{suffix}"
        assert len(name) <= IFNAMSIZ, name  # MAX_NODES keeps every suffix short enough
        return name
