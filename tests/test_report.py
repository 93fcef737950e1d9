"""report.html, the plots and timeline.html, on synthetic run directories.

`make_run_dir` builds a results directory as the runner leaves it (spec, history with
nemesis periods, results, checker artefacts); the browser and campaign tests reuse it.
"""
from __future__ import annotations

import html as html_lib
import json
import pathlib
import random
import re

import pytest
import yaml

from harness.report import anomaly_types, describe_failures, write_report, write_timeline
from core.history.faults import fault_periods
from harness.report.timeline import render_timeline, timeline_data

from testkit.browser import dump_dom
MS = 1_000_000


def synthetic_history(n_ops: int, *, concurrency: int = 5, seed: int = 1,
                      faults: bool = True, long_values: bool = False) -> list[dict]:
    """About n_ops ops of a register workload over `concurrency` threads, with a healed
    partition, a healed kill and a pause never healed; some fails and infos (an info retires
    its process, whose thread continues as process + concurrency)."""
    rng = random.Random(seed)
    events = []
    per_thread = max(n_ops // (2 * concurrency), 1)
    for thread in range(concurrency):
        process, t = thread, rng.randrange(MS)
        for _ in range(per_thread):
            f = rng.choice(["read", "write", "cas"])
            value = ["k1", None if f == "read" else rng.randrange(5) if f == "write" else [1, 2]]
            if long_values:
                value = ["k1", list(range(200))]
            latency = rng.randrange(MS // 2, 20 * MS)
            kind = rng.choices(["ok", "fail", "info"], [90, 7, 3])[0]
            events.append({"time": t, "type": "invoke", "process": process, "f": f, "value": value})
            done = {"time": t + latency, "type": kind, "process": process, "f": f,
                    "value": ["k1", rng.randrange(5)] if f == "read" and kind == "ok" else value,
                    "node": f"n{rng.randrange(1, 4)}"}
            if kind != "ok":
                done["error"] = "timeout" if kind == "info" else "cas-mismatch"
            events.append(done)
            t += latency + rng.randrange(MS)
            if kind == "info":
                process += concurrency
    end = max(e["time"] for e in events)
    if faults:
        nemesis = [(0.2, "start-partition", {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}),
                   (0.4, "stop-partition", "network healed"),
                   (0.5, "start-kill", ["n2"]), (0.6, "stop-kill", ["n2"]),
                   (0.8, "start-pause", ["n3"])]
        for frac, f, value in nemesis:
            events.append({"time": int(end * frac), "type": "info", "process": "nemesis", "f": f,
                           "value": value})
    events.sort(key=lambda e: (e["time"], e["type"] == "invoke"))
    for i, e in enumerate(events):
        e["index"] = i
    return events


def make_run_dir(store: pathlib.Path, name: str = "raftkv-register", *, valid: bool = True,
                 stamp: str = "20240102T030405.678", n_ops: int = 400, checker: str = "linearizable",
                 target: str = "raftkv", workload: str = "register") -> pathlib.Path:
    """A results directory as the runner leaves it; invalid runs carry a linearizability
    failure on k1 (checker="linearizable") or a G1c cycle (checker="elle"), with artefacts."""
    run = store / name / stamp
    run.mkdir(parents=True)
    spec = {"name": name, "target": target, "workload": workload, "nemesis": ["partition", "kill"],
            "nemesis_interval": 5, "node_count": 3, "concurrency": 5, "time_limit": 10, "rate": 100,
            "seed": 42, "bugs": [] if valid else ["stale-reads"], "store": str(store)}
    (run / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    history = synthetic_history(n_ops)
    (run / "history.jsonl").write_text("".join(json.dumps(op) + "\n" for op in history))
    (run / "tectonic.log").write_text("setup done\nrunning\n")
    stats = {"valid": True, "count": len(history), "by_f": {"read": {"ok": 10, "fail": 0, "info": 1}}}
    checkers: dict = {"stats": stats}
    if checker == "linearizable":
        lin: dict = {"valid": True, "failures": {}, "explanation": ""}
        if not valid:
            lin = {"valid": False, "failures": {"k1": {"op": {"f": "read", "value": ["k1", 3]}}},
                   "explanation": "process 2 read 3 from k1 after process 4 wrote 1 and no write of 3 was open"}
            (run / "linear").mkdir()
            (run / "linear" / "k1.html").write_text("<html><body>counterexample k1</body></html>")
        checkers["linearizable"] = lin
    else:
        elle: dict = {"valid": True, "anomaly-types": [], "anomalies": {}, "not": [], "also_not": []}
        if not valid:
            elle = {"valid": False, "anomaly-types": ["G1c"],
                    "anomalies": {"G1c": [{"cycle": [1, 2]}]}, "not": ["read-committed"],
                    "also_not": ["serializable"],
                    "explanations": {"G1c": "T1 appended 3 to k2, which T2 read; T2 appended 4 to k1, which T1 read"}}
            (run / "elle").mkdir()
            (run / "elle" / "G1c.txt").write_text("Let T1 = {...}\nThen T1 < T2 because T2 read T1's append.")
            (run / "elle" / "G1c.dot").write_text("digraph { T1 -> T2 [label=wr]; T2 -> T1 [label=wr]; }")
            (run / "elle" / "G1c.svg").write_text(
                '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40">'
                '<text x="5" y="25">T1 -&gt; T2 -&gt; T1</text></svg>')
            # The Elle checker's own layout: one drawing per cycle, SVG when graphviz ran.
            (run / "elle" / "G1c").mkdir()
            (run / "elle" / "G1c" / "1.dot").write_text("digraph { T3 -> T4; T4 -> T3; }")
            (run / "elle" / "G1c" / "1.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
            (run / "elle" / "G1c" / "2.dot").write_text("digraph { T5 -> T6; T6 -> T5; }")
        checkers["elle"] = elle
    results = {"valid": all(r["valid"] is True for r in checkers.values()), "checkers": checkers}
    (run / "results.json").write_text(json.dumps(results))
    latest = store / "latest"
    if latest.is_symlink():
        latest.unlink()
    latest.symlink_to(run.relative_to(store))
    return run


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def test_valid_report_leads_with_the_verdict_and_says_how_to_repeat(tmp_path):
    run = make_run_dir(tmp_path, valid=True)
    html = pathlib.Path(write_report(str(run))).read_text()
    assert html.index("VALID") < html.index("Repeat this run") < html.index("What the checkers found")
    assert "INVALID" not in html and "Every checker passed." in html
    assert f"tectonic test --spec {run}/spec.yaml" in html
    via_latest = pathlib.Path(write_report(str(tmp_path / "latest"))).read_text()
    assert f"tectonic test --spec {run}/spec.yaml" in via_latest and "run of 2024-01-02 03:04:05" in via_latest
    assert "The spec holds the seed (42)" in html
    for plot in ("latency.png", "rate.png", "latency-quantiles.png"):
        assert (run / plot).stat().st_size > 5000
        assert f'href="{plot}"' in html
    assert html.count("data:image/png;base64,") == 3
    assert (run / "timeline.html").exists() and 'href="timeline.html"' in html
    text = _text(html)
    assert "partition" in text and "never healed" in text  # the pause ran to the end
    assert re.search(r'href="timeline.html#t=\d+\.\d{3}"', html)  # fault periods link the timeline
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in html  # the report itself needs no script


def test_invalid_linearizable_report_explains_and_links_the_counterexample(tmp_path):
    run = make_run_dir(tmp_path, valid=False, checker="linearizable")
    html = pathlib.Path(write_report(str(run))).read_text()
    assert html.index("INVALID") < html.index("Repeat this run")
    assert "Found: nonlinearizable." in html
    assert "process 2 read 3 from k1 after process 4 wrote 1" in html
    assert 'href="linear/k1.html"' in html and (run / "linear" / "k1.html").exists()
    assert "1 key(s) have no linearization: k1." in html
    assert "stale-reads" in html  # the spec's bugs are shown


def test_invalid_elle_report_shows_the_cycle_in_words_and_picture(tmp_path):
    run = make_run_dir(tmp_path, valid=False, checker="elle", workload="list-append")
    html = pathlib.Path(write_report(str(run))).read_text()
    assert "Anomalies found: <b>G1c</b>." in html
    assert "The history is not: read-committed." in html and "It is also not: serializable." in html
    assert "T2 appended 4 to k1, which T1 read" in html
    assert 'href="elle/G1c.txt"' in html  # the words come from the result; the file holds them all
    assert html.count("data:image/svg+xml;base64,") == 2  # elle/G1c.svg and elle/G1c/1.svg
    found = html[html.index("What the checkers found"):html.index("<h2>Operations")]
    assert 'href="elle/G1c/1.svg"' in found and 'href="elle/G1c/1.dot"' not in found
    assert 'href="elle/G1c/2.dot"' in found and "T5 -&gt; T6" in found  # no SVG: its source
    assert "G1c (1 found)" in html


def test_a_run_that_crashed_before_checking_still_gets_a_report(tmp_path):
    run = tmp_path / "t" / "20240101T000000.000"
    run.mkdir(parents=True)
    (run / "spec.yaml").write_text("name: t\nseed: 7\n")
    (run / "history.jsonl").write_text('{"index": 0, "time": 5, "type": "invoke", "process": 0, "f": "read", "value": null}\n'
                                       '{"index": 1, "time": oops}\n{"index": 2}\n')
    html = pathlib.Path(write_report(str(run))).read_text()
    assert "UNKNOWN" in html and "did not reach its checkers" in html
    assert "could not be read" in html and "history.jsonl:2" in html


def test_checkers_without_prose_are_summarized_by_their_lists_and_keys(tmp_path):
    run = make_run_dir(tmp_path, valid=True)
    results = {"valid": False, "checkers": {
        "stats": {"valid": False, "never_succeeded": ["add"], "by_f": {"add": {"ok": 0, "fail": 0, "info": 9}}},
        "set": {"valid": False, "keys": {
            "0": {"valid": True, "attempted": 10, "lost": []},
            "1": {"valid": False, "attempted": 10, "lost": [3, 4]}}}}}
    (run / "results.json").write_text(json.dumps(results))
    html = pathlib.Path(write_report(str(run))).read_text()
    assert "stats: invalid: never_succeeded: add" in html
    assert "set: invalid: keys not valid: 1" in html
    rows = re.findall(r"<tr><td><code>(\d)</code></td><td><span class=\"verdict (\w+)\">", html)
    assert rows == [("1", "invalid"), ("0", "valid")]  # failing keys first
    assert "<td>2: [3, 4]</td>" in html


def test_a_malformed_history_is_named_in_the_report(tmp_path):
    run = make_run_dir(tmp_path, valid=True)
    ops = [{"index": 0, "time": 1, "type": "invoke", "process": 0, "f": "read", "value": None},
           {"index": 1, "time": 2, "type": "invoke", "process": 0, "f": "read", "value": None}]
    (run / "history.jsonl").write_text("".join(json.dumps(op) + "\n" for op in ops))
    html = pathlib.Path(write_report(str(run))).read_text()
    assert "The history is malformed:" in html and "history.jsonl:2: process 0 invokes" in html
    assert "VALID" in html  # the verdict still leads


def test_fault_periods_pair_start_and_stop_and_run_to_the_end_when_unhealed():
    h = [{"time": 10, "type": "info", "process": "nemesis", "f": "start-partition", "value": "a"},
         {"time": 20, "type": "invoke", "process": "nemesis", "f": "stop-partition", "value": None},
         {"time": 30, "type": "info", "process": "nemesis", "f": "stop-partition", "value": "healed"},
         {"time": 40, "type": "info", "process": "nemesis", "f": "start", "value": None},
         {"time": 50, "type": "info", "process": "nemesis", "f": "start-kill", "value": ["n1"]},
         {"time": 60, "type": "info", "process": "nemesis", "f": "heal", "value": "healed every fault"},
         {"time": 70, "type": "info", "process": "nemesis", "f": "start-pause", "value": ["n2"]},
         {"time": 90, "type": "ok", "process": 1, "f": "read", "value": 1}]
    periods = fault_periods(h)
    assert [(p.kind, p.start, p.end, p.stopped) for p in periods] == [
        ("partition", 10, 30, True), ("fault", 40, 60, True), ("kill", 50, 60, True), ("pause", 70, 90, False)]


def test_anomaly_summary_names_what_failed():
    results = {"valid": False, "checkers": {
        "stats": {"valid": True},
        "workload": {"valid": False, "checkers": {
            "elle": {"valid": False, "anomaly-types": ["G0", "G1c"], "explanations": {"G0": "T1 and T2 overwrote"}},
            "linearizable": {"valid": False, "failures": {"k3": {}}, "explanation": "no linearization"}}}}}
    assert anomaly_types(results) == ["G0", "G1c", "nonlinearizable"]
    text = describe_failures(results)
    assert "workload.elle: invalid (G0, G1c): T1 and T2 overwrote" in text
    assert "workload.linearizable: invalid on key(s) k3: no linearization" in text
    assert anomaly_types({"valid": True, "checkers": {"stats": {"valid": True}}}) == []
    long = {"valid": False, "checkers": {"linearizable": {
        "valid": False, "failures": {str(k): {} for k in range(7)},
        "explanation": "\n".join(f"line {i}" for i in range(12))}}}
    assert describe_failures(long).splitlines() == [
        "linearizable: invalid on key(s) 0, 1, 2, 3, 4 (+2 more):",
        *[f"  line {i}" for i in range(8)], "  … (4 more lines in the report)"]


def test_timeline_data_is_compact_and_pairs_ops_per_process():
    h = synthetic_history(200, long_values=True)
    data = timeline_data(h)
    clients = sum(1 for op in h if op["process"] != "nemesis") // 2
    assert len(data["s"]) == clients + 5  # every client op once, plus the five nemesis reports
    assert data["procs"][-1] == "nemesis" and data["procs"][0] == "p0"
    assert all(isinstance(v, str) and v.endswith("…") for v in data["v"][:5] if data["c"][0] != len(data["procs"]) - 1)
    assert all(e == -1 or e >= s for s, e in zip(data["s"], data["e"]))
    assert [f[0] for f in data["faults"]] == ["partition", "kill", "pause"]


@pytest.mark.slow
def test_timeline_of_100000_ops_stays_small_and_renders_in_a_browser(tmp_path):
    history = synthetic_history(100_000, concurrency=10)
    assert len(history) >= 100_000
    path = pathlib.Path(write_timeline(str(tmp_path), history, "big"))
    size = path.stat().st_size
    assert size < 10 * 1024 * 1024, f"timeline.html is {size} bytes"
    dom = dump_dom(path.as_uri())
    drawn = re.search(r'data-rendered="(\d+)"', dom)
    assert drawn and 0 < int(drawn.group(1)) < 4000  # only what is in view is drawn
    assert f"{len([op for op in history if op['type'] == 'invoke']):,} ops" in dom
    assert 'class="op t0"' in dom
    middle = history[len(history) // 2]["time"] / 1e9
    dom = dump_dom(f"{path.as_uri()}#t={middle:.3f}")
    tops = [float(t) for t in re.findall(r'class="op t\d" data-i="\d+" style="top:([0-9.]+)px', dom)]
    assert tops and min(tops) > 1000  # it opened in the middle, not at the start


@pytest.mark.slow
def test_hovering_a_timeline_box_shows_the_op_details(tmp_path):
    history = synthetic_history(60, concurrency=2, faults=False)
    page = render_timeline(history, "hover")
    # Hover the first box the page drew, then copy the tooltip where --dump-dom shows it.
    probe = ('<script>const box = document.querySelector(".op");'
             'box.dispatchEvent(new MouseEvent("mousemove", {bubbles: true, clientX: 50, clientY: 50}));'
             'document.body.dataset.tip = document.getElementById("tip").textContent;</script></body>')
    path = tmp_path / "timeline.html"
    path.write_text(page.replace("</body>", probe))
    dom = dump_dom(path.as_uri())
    tip = re.search(r'data-tip="([^"]*)"', dom)
    assert tip, "the tooltip stayed empty"
    text = html_lib.unescape(tip.group(1))
    assert re.match(r"p\d+  (read|write|cas)  (ok|fail|info)\nvalue:  \[\"k1\",", text), text
    assert re.search(r"\d\.\d{3} s → \d\.\d{3} s  \(\d+\.\d\d ms\)$", text), text


HOSTILE_VALUES = ["<!-- a comment opener", "</script><script>alert(1)</script>", "a & b > c",
                  "<!--<script>", "\u2028line\u2029sep"]


def _hostile_history():
    h = []
    for i, v in enumerate(HOSTILE_VALUES):
        h.append({"index": 2 * i, "time": 1000 * i, "type": "invoke", "process": 0, "f": "write",
                  "value": ["k", v]})
        h.append({"index": 2 * i + 1, "time": 1000 * i + 500, "type": "ok", "process": 0,
                  "f": "write", "value": ["k", v]})
    return h


def test_op_values_cannot_break_the_timeline_pages_embedded_data():
    page = render_timeline(_hostile_history(), "hostile")
    embedded = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert embedded, "the data element ended early"
    assert "<!--" not in embedded.group(1) and "</" not in embedded.group(1)
    data = json.loads(embedded.group(1))  # still JSON: the page's JSON.parse gets the values back
    shown = json.dumps(data, ensure_ascii=False)
    for v in HOSTILE_VALUES:
        assert json.dumps(v, ensure_ascii=False)[1:-1] in shown


@pytest.mark.slow
def test_a_timeline_with_hostile_values_renders_in_a_browser(tmp_path):
    path = tmp_path / "timeline.html"
    path.write_text(render_timeline(_hostile_history(), "hostile"))
    dom = dump_dom(path.as_uri())
    drawn = re.search(r'data-rendered="(\d+)"', dom)
    assert drawn and int(drawn.group(1)) == len(HOSTILE_VALUES)
