"""Noticing that the cluster disappeared from under a running test.

If someone removes the nodes' namespaces (or containers) mid-test, every op after that
fails or times out, and a checker given such a history may well call it valid: an outage
looks like a run of failed ops. A run whose cluster vanished is an error of the run, not a
verdict, so a watch thread asks the backend every second and stops the test the moment
anything is gone; run.py then stores what was recorded and reports the loss instead of a
verdict.
"""
from __future__ import annotations

import logging
import threading

log = logging.getLogger("tectonic")

INTERVAL = 1.0


class ClusterWatch:
    """While entered, checks `cluster.vanished()` every `interval` seconds; the first time
    it names anything, records it in `gone` and sets `stop`."""

    def __init__(self, cluster, stop: threading.Event, interval: float | None = None):
        self.cluster, self.stop = cluster, stop
        self.interval = INTERVAL if interval is None else interval
        self.gone: list[str] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="cluster-watch")

    def __enter__(self) -> ClusterWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(timeout=self.interval + 5)

    def _watch(self) -> None:
        while not self._done.wait(self.interval):
            try:
                gone = self.cluster.vanished()
            except Exception as e:  # noqa: BLE001 - a failed look is not a loss; say so, look again
                log.warning("could not check the cluster: %s", e)
                continue
            if gone:
                self.gone = list(gone)
                log.error("the cluster vanished mid-test: %s; stopping", "; ".join(gone))
                self.stop.set()
                return

    @property
    def message(self) -> str:
        return f"the cluster vanished mid-test ({'; '.join(self.gone)})"
