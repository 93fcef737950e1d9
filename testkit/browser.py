"""Headless Chromium for the tests that open tectonic's pages as a user's browser would:
the DOM a page builds, and how long it takes to open."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import pytest

CHROMIUM = "/usr/bin/chromium"
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--window-size=1280,900"]
# Set on the page's body by a script appended to a copy: milliseconds from navigation start
# until the page was parsed and its scripts ran, as the browser measures it.
_OPEN_PROBE = "<script>document.body.dataset.ms = Math.round(performance.now());</script></body>"


def need_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium not installed (apt-get install -y chromium)")


def dump_dom(url: str, budget_ms: int = 5000) -> str:
    """The DOM Chromium built for url once its scripts ran (within budget_ms of virtual
    time), in a throwaway profile."""
    need_chromium()
    profile = tempfile.mkdtemp(prefix="tectonic-chromium-")
    try:
        out = subprocess.run([CHROMIUM, *_FLAGS, f"--user-data-dir={profile}",
                              f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                             capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return out.stdout


def open_ms(page_html: str, folder: str, name: str = "probed.html") -> tuple[int, str]:
    """(milliseconds until the page was parsed and its scripts ran, the DOM it built), for
    a copy of page_html written to folder/name with the probe appended."""
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page_html.replace("</body>", _OPEN_PROBE))
    try:
        dom = dump_dom("file://" + os.path.abspath(path))
    finally:
        os.unlink(path)
    ms = re.search(r'data-ms="(\d+)"', dom)
    assert ms, "the page's scripts did not run in Chromium"
    return int(ms.group(1)), dom
