"""Clock faults on real hosts: the host's own clock moves (`date -s`), as in Jepsen.

A host's clock is set to the controller's time plus an offset, so offsets do not
accumulate and offset 0 puts the host back (the controller's clock is the reference: keep
it synchronised). Before the first change the host's NTP daemons are stopped, or they
would fight the fault; restore() sets the host to the controller's time and starts them
again. SSHCluster.destroy calls restore, so a crashed nemesis still leaves true time.

Never on a shared kernel: namespaces and containers share their machine's one clock, so
moving "a node's" clock would move the controller's and every other node's. Each host's
kernel is told apart by its boot id; a host that shares the controller's kernel, or one
with another host, is refused with a clear message before any clock is touched.
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger("tectonic.control")

BOOT_ID = "/proc/sys/kernel/random/boot_id"
NTP_SERVICES = ("systemd-timesyncd", "chrony", "chronyd", "ntp", "ntpsec", "openntpd")
# As pgrep sees them: process names are cut at 15 characters.
NTP_DAEMONS = "^(systemd-timesyn|chronyd|ntpd|openntpd)$"


class ClockFaultRefused(ValueError):
    """This host's clock must not be moved (the message says why and what to do)."""


def controller_boot_id() -> str:
    with open(BOOT_ID) as f:
        return f.read().strip()


def shared_kernel_refusal(boot_ids: dict[str, str], controller: str) -> str | None:
    """Why clock faults cannot run on these hosts ({name: boot id}), or None when each
    host has a kernel of its own, distinct from the controller's."""
    on_controller = sorted(name for name, boot in boot_ids.items() if boot == controller)
    if on_controller:
        return (f"clock faults refused: {', '.join(on_controller)} run(s) on the controller's "
                f"own kernel (a namespace or container of this machine), and moving that clock "
                f"would move this machine's; use hosts of their own")
    by_kernel: dict[str, list[str]] = {}
    for name, boot in boot_ids.items():
        by_kernel.setdefault(boot, []).append(name)
    shared = [sorted(names) for names in by_kernel.values() if len(names) > 1]
    if shared:
        return (f"clock faults refused: {', '.join(shared[0])} share one kernel, hence one "
                f"clock; each node needs a host of its own")
    return None


def boot_id(remote) -> str:
    return remote.exec(["cat", BOOT_ID], timeout=15).stdout.strip()


class HostClock:
    """One host's real clock. set_offset(seconds): from now on the host reads the
    controller's time + seconds. restore(): true time and NTP back."""

    def __init__(self, remote, *, controller: str | None = None, now=time.time):
        self.remote = remote
        self.controller = controller if controller is not None else controller_boot_id()
        self.now = now
        self.offset = 0.0
        self.touched = False
        self.stopped_services: list[str] = []
        self._checked = False

    def set_offset(self, seconds: float) -> None:
        self._check_own_kernel()
        if not self.touched:
            self._stop_ntp()
            self.touched = True
        self._set_time(self.now() + seconds)
        self.offset = seconds

    def restore(self) -> None:
        """Put the host at the controller's time and restart the NTP daemons stopped.
        Idempotent; a clock never moved is left alone."""
        if not self.touched:
            return
        self._set_time(self.now())
        self.offset = 0.0
        for service in self.stopped_services:
            self.remote.exec(["systemctl", "start", service], timeout=30)
        self.stopped_services = []
        self.touched = False

    def _check_own_kernel(self) -> None:
        if self._checked:
            return
        host = boot_id(self.remote)
        if host == self.controller:
            raise ClockFaultRefused(shared_kernel_refusal({self._name(): host}, self.controller))
        self._checked = True

    def _stop_ntp(self) -> None:
        has_systemctl = self.remote.exec(["sh", "-c", "command -v systemctl"],
                                         check=False, timeout=15).returncode == 0
        if has_systemctl:
            for service in NTP_SERVICES:
                state = self.remote.exec(["systemctl", "is-active", service], check=False, timeout=15)
                if state.stdout.strip() == "active":
                    self.remote.exec(["systemctl", "stop", service], timeout=30)
                    self.stopped_services.append(service)
                    log.info("clock: stopped %s on %s for the test", service, self._name())
            return
        running = self.remote.exec(["pgrep", "-l", NTP_DAEMONS], check=False, timeout=15)
        if running.stdout.strip():
            raise ClockFaultRefused(
                f"clock faults refused on {self._name()}: a time daemon runs "
                f"({running.stdout.split()[-1]}) and there is no systemctl to stop it and "
                f"start it again; stop it yourself for the test")

    def _set_time(self, epoch: float) -> None:
        self.remote.exec(["date", "-s", f"@{epoch:.6f}"], timeout=15)

    def _name(self) -> str:
        return getattr(self.remote, "name", "the host")
