"""The failing-key pages of the linearizability checker: fault periods on the timeline,
and pages of huge histories that stay small and open quickly in a real browser."""
from __future__ import annotations

import re

import pytest

from checkers.linearizable import LinearizableChecker
from testkit.browser import open_ms
from testkit.register_history import register_history

PAGE_LIMIT = 5 * 1024 * 1024


def _failing(n_ops: int, seed: int) -> tuple[list[dict], dict]:
    """A non-linearizable single-register history (stale reads) and its check result."""
    history = register_history(n_ops, concurrency=5, seed=seed, timeout_rate=0.01, stale_reads=0.01)
    result = _checker().check(history, {})
    assert result["valid"] is False
    return history, result


def _checker() -> LinearizableChecker:
    return LinearizableChecker("cas-register", initial=0, fail_cas="observed", time_limit=None)


def _with_partition_around(history: list[dict], invoke_index: int, done_index: int,
                           timed: bool = True) -> list[dict]:
    """The history with a nemesis partition started just before op `invoke_index` and
    stopped just after `done_index`, renumbered."""
    out = []
    for op in history:
        if op["index"] == invoke_index:
            out.append({"type": "info", "process": "nemesis", "f": "start-partition",
                        "value": {"n1": ["n2", "n3"]}, "time": op["time"] - 1})
        out.append(dict(op))
        if op["index"] == done_index:
            out.append({"type": "info", "process": "nemesis", "f": "stop-partition",
                        "value": None, "time": op["time"] + 1})
    for i, op in enumerate(out):
        op["index"] = i
        if not timed:
            del op["time"]
    return out


def _page(history: list[dict], tmp_path) -> tuple[str, dict]:
    result = _checker().check(history, {"out_dir": str(tmp_path)})
    assert result["valid"] is False
    (failure,) = result["failures"].values()
    with open(failure["html"], encoding="utf-8") as f:
        return f.read(), result


@pytest.mark.parametrize("timed", [True, False], ids=["by-time", "by-position"])
def test_a_fault_in_force_at_the_failure_is_shaded_on_the_timeline(tmp_path, timed):
    history, result = _failing(400, seed=4)
    bad = next(iter(result["failures"].values()))["op"]
    page, _ = _page(_with_partition_around(history, bad["invoke_index"], bad["index"], timed), tmp_path)
    bands = re.findall(r'<g class="fault"><title>([^<]*)</title><rect x="(\d+)" y="20" width="(\d+)"', page)
    assert len(bands) == 1, bands
    title, x, width = bands[0]
    assert title.startswith("fault partition in force: ") and "n1" in title
    assert int(width) > 0
    # The band covers the failing op's box (it was in force from before its invocation
    # to after its completion).
    box = re.search(r'<g class="op bad[^"]*"[^>]*>.*?<rect x="(\d+)" y="\d+" width="(\d+)"', page, re.S)
    assert box
    assert int(x) <= int(box.group(1)) and int(box.group(1)) + int(box.group(2)) <= int(x) + int(width)


def test_a_fault_far_from_the_failure_is_not_drawn(tmp_path):
    history, _ = _failing(400, seed=4)
    early = _with_partition_around(history, history[0]["index"], history[1]["index"])
    page, _ = _page(early, tmp_path)
    assert '<g class="fault">' not in page


@pytest.mark.slow
def test_the_page_of_a_100000_op_failing_history_is_small_and_renders_quickly(tmp_path):
    history, result = _failing(100_000, seed=4)
    bad = next(iter(result["failures"].values()))["op"]
    page, _ = _page(_with_partition_around(history, bad["invoke_index"], bad["index"]), tmp_path / "big")
    assert len(page.encode()) < PAGE_LIMIT, f"{len(page.encode())} bytes"
    ms, dom = open_ms(page, str(tmp_path), "big.html")
    assert re.search(r'<g class="op bad', dom), "the failing op is not drawn"
    assert '<g class="fault">' in dom
    assert len(re.findall(r'<g class="op ', dom)) <= 400
    # Under 2 s; on a machine too busy for that, no slower than twice a 400-op
    # history's page opened just after it (the history's length must not matter).
    small_history, _ = _failing(400, seed=4)
    small_ms, _ = open_ms(_page(small_history, tmp_path / "small")[0], str(tmp_path), "small.html")
    assert ms < max(2000, 2 * small_ms), f"{ms} ms to open (a 400-op history's page: {small_ms} ms)"

