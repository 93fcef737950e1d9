"""Progress while a test runs: exact counts from many threads, plain lines off a terminal,
a live display on one."""
from __future__ import annotations

import io
import re
import threading
import time

from harness.progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_counts_are_exact_when_many_threads_report_at_once():
    progress = Progress({"name": "t", "time_limit": 60}, stream=io.StringIO(), log_interval=60)
    kinds = ["ok", "ok", "fail", "info", "invoke"]

    def worker(p):
        for i in range(5000):
            progress.op({"type": kinds[i % 5], "process": p, "f": "read"})

    threads = [threading.Thread(target=worker, args=(p,)) for p in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    progress.close()
    s = progress.snapshot()
    assert (s["ok"], s["fail"], s["info"]) == (16000, 8000, 8000)  # invocations are not counted


def test_faults_are_active_from_start_to_stop():
    progress = Progress({"name": "t"}, stream=io.StringIO(), log_interval=60)
    progress.op({"type": "invoke", "process": "nemesis", "f": "start-kill", "value": None})
    assert progress.snapshot()["faults"] == {}  # asked for, not yet done
    progress.op({"type": "info", "process": "nemesis", "f": "start-partition", "value": "n1 | n2 n3"})
    progress.op({"type": "info", "process": "nemesis", "f": "start-kill", "value": ["n2"]})
    progress.op({"type": "info", "process": "nemesis", "f": "stop-partition", "value": "healed"})
    assert progress.snapshot()["faults"] == {"kill": "['n2']"}
    progress.op({"type": "info", "process": "nemesis", "f": "start-clock", "value": None})
    progress.op({"type": "info", "process": "nemesis", "f": "heal", "value": "healed every fault"})
    assert progress.snapshot()["faults"] == {}
    progress.close()


def test_plain_lines_off_a_terminal_show_phase_time_counts_and_faults():
    out = io.StringIO()
    progress = Progress({"name": "raftkv-register", "time_limit": 30}, stream=out, log_interval=0.05)
    progress.phase("setup")
    progress.phase("running")
    progress.op({"type": "info", "process": "nemesis", "f": "start-partition", "value": "x"})
    for _ in range(7):
        progress.op({"type": "ok", "process": 1, "f": "read"})
    progress.op({"type": "fail", "process": 2, "f": "cas"})
    deadline = time.monotonic() + 10
    while "ok 7 fail 1" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    progress.phase("checking")
    progress.close()
    progress.close()
    text = out.getvalue()
    assert "\x1b[" not in text  # no terminal escapes in a log file
    assert "raftkv-register: running" in text and "raftkv-register: checking" in text
    line = next(l for l in text.splitlines() if "ok 7 fail 1 info 0" in l)
    assert re.search(r"running \d+s, \d+s left; \d+ ops/s;", line)
    assert line.endswith("faults: partition")
    assert text.rstrip().splitlines()[-1].startswith("raftkv-register: done in ")
    assert text.rstrip().endswith("8 ops (ok 7, fail 1, info 0)")


def test_live_display_on_a_terminal():
    term = FakeTerminal()
    with Progress({"name": "etcd-set", "time_limit": 10}, stream=term) as progress:
        progress.phase("running")
        progress.op({"type": "info", "process": "nemesis", "f": "start-pause", "value": ["n3"]})
        for _ in range(3):
            progress.op({"type": "info", "process": 4, "f": "add"})
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", term.getvalue())
    assert "etcd-set" in text and "running" in text
    assert "info 3" in text and "faults: pause ['n3']" in text
    assert "done in" in text


def test_throughput_counts_ops_since_the_previous_look():
    progress = Progress({"name": "t"}, stream=io.StringIO(), log_interval=60)
    assert progress.snapshot()["ops_per_s"] == 0
    for _ in range(500):
        progress.op({"type": "ok", "process": 0})
    time.sleep(0.05)
    assert progress.snapshot()["ops_per_s"] > 0
    progress.close()


def test_the_first_look_after_the_clients_start_shows_their_rate():
    progress = Progress({"name": "t"}, stream=io.StringIO(), log_interval=60)
    progress.phase("running")
    for _ in range(200):
        progress.op({"type": "ok", "process": 0})
    time.sleep(0.2)
    # Never looked at before: the rate counts from the start of the running phase (about
    # 1,000 ops/s here), not zero for want of an earlier sample.
    assert progress.snapshot()["ops_per_s"] > 100
    progress.close()
