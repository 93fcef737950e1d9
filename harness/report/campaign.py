"""A campaign's outputs: campaign.html (the matrix of entries x verdict counts, the
bug-finding figures with a time-to-detection plot, links to each run's report) and
junit.xml (one testcase per entry, a failure when the entry missed its pass policy), so CI
systems show a campaign like a test suite.

`summaries` pairs each entry (label, expect, at_least, runs) with
harness.campaign.summarize_entry's dict: status, counts, found, found_seeds, ttd, ttd_median,
ttd_max, anomalies, and `records`: per run a dict (verdict, passed, run_dir, seconds, anomalies, seed,
detection, error) or None when the run has not happened (an interrupted campaign).
"""
from __future__ import annotations

import datetime as dt
import os
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .html import data_uri, esc, page
from .rundir import repeat_command

TTD_PLOT = "ttd.png"
_COUNTS = ("valid", "invalid", "unknown", "error", "not run")
_STATUS = {"passed": ("valid", "as expected"), "failed": ("invalid", "NOT as expected"),
           "incomplete": ("unknown", "not decided yet")}


def write_campaign_html(campaign_dir: str, name: str, summaries: list[tuple[Any, dict]]) -> str:
    from harness.campaign import policy_text
    rows = []
    for entry, summary in summaries:
        word, text = _STATUS[summary["status"]]
        counts = summary["counts"]
        ttd = ("" if summary["ttd_median"] is None
               else f"{summary['ttd_median']:.1f} / {summary['ttd_max']:.1f}")
        cells = [esc(entry.label), esc(policy_text(entry)),
                 *(esc(counts[c]) if counts[c] else '<span class="muted">0</span>' for c in _COUNTS),
                 esc(", ".join(summary["anomalies"])),
                 esc(f"{summary['found']} of {summary['runs']}"), esc(ttd),
                 esc(", ".join(str(s) for s in summary["found_seeds"])),
                 f'<span class="verdict {word}">{esc(text)}</span>',
                 _run_links(campaign_dir, summary["records"])]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    passed = sum(1 for _, s in summaries if s["status"] == "passed")
    failed = sum(1 for _, s in summaries if s["status"] == "failed")
    pending = len(summaries) - passed - failed
    word, badge = ("invalid", "FAILED") if failed else ("unknown", "INCOMPLETE") if pending else ("valid", "PASSED")
    headline = (f"{passed} of {len(summaries)} entries as expected" + (f", {failed} not" if failed else "")
                + (f", {pending} not decided yet" if pending else ""))
    head = "".join(f"<th>{h}</th>" for h in ("entry", "expected", *_COUNTS, "anomalies", "found in",
                                              "time to detection, s (median / max)",
                                              "seeds that found it", "", "runs"))
    plot = _ttd_plot(campaign_dir, summaries)
    figure = (f'<h2>Time to detection</h2><p class="muted">Seconds from the start of each test to '
              f'the invocation of the first operation the checkers blame, per invalid run.</p>'
              f'<img alt="time to detection per entry" src="{data_uri(plot, "image/png")}">'
              if plot else "")
    body = (f"<h1>Campaign {esc(name)}</h1>"
            f'<div class="banner {word}"><span class="verdict {word}">{badge}</span><b>{esc(headline)}</b></div>'
            f"<table><tr>{head}</tr>{''.join(rows)}</table>{figure}")
    path = os.path.join(campaign_dir, "campaign.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page(f"campaign {name}", body))
    return path


def _run_links(campaign_dir: str, records: list[dict | None]) -> str:
    """One link per run, numbered, titled with its verdict; crashed and missing runs unlinked."""
    links = []
    for n, rec in enumerate(records, 1):
        if rec is None:
            links.append(f'<span class="muted" title="not run">{n}</span>')
        elif rec.get("run_dir"):
            rel = os.path.relpath(os.path.join(rec["run_dir"], "report.html"), campaign_dir)
            title = f"{rec['verdict']}, seed {rec.get('seed')}"
            links.append(f'<a href="{esc(quote(rel))}" title="{esc(title)}">{n}</a>')
        else:
            links.append(f'<span title="{esc(rec.get("error", ""))}">{n}: error</span>')
    return " ".join(links)


def _ttd_plot(campaign_dir: str, summaries: list[tuple[Any, dict]]) -> str | None:
    """ttd.png: each invalid run's time to detection as a dot, one row per entry that
    found something, the median marked; None when no entry has a figure."""
    found = [(entry.label, summary) for entry, summary in summaries if summary["ttd"]]
    if not found:
        return None
    fig = Figure(figsize=(10, 1.2 + 0.45 * len(found)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for row, (_, summary) in enumerate(found):
        ax.scatter(summary["ttd"], [row] * len(summary["ttd"]), color="C3", alpha=0.7, s=24)
        ax.plot([summary["ttd_median"]] * 2, [row - 0.3, row + 0.3], color="black", linewidth=2)
    ax.set_yticks(range(len(found)))
    ax.set_yticklabels([f"{label} ({s['found']}/{s['runs']})" for label, s in found], fontsize=8)
    ax.set_ylim(len(found) - 0.5, -0.5)
    ax.set_xlim(left=0)
    ax.set_xlabel("seconds from the test's start to the first blamed op (bar: median)")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    path = os.path.join(campaign_dir, TTD_PLOT)
    fig.savefig(path)
    return path


def write_junit(campaign_dir: str, name: str, summaries: list[tuple[Any, dict]]) -> str:
    from harness.campaign import policy_text
    suite = ET.Element("testsuite", name=name, timestamp=dt.datetime.now().isoformat(timespec="seconds"))
    failures = errors = skipped = 0
    total = 0.0
    for entry, summary in summaries:
        case = ET.SubElement(suite, "testcase", classname=f"tectonic.{name}", name=entry.label)
        records = [r for r in summary["records"] if r is not None]
        seconds = sum(r["seconds"] for r in records)
        case.set("time", f"{seconds:.3f}")
        total += seconds
        details = _details(entry, summary, policy_text(entry))
        if summary["status"] == "incomplete":
            skipped += 1
            ET.SubElement(case, "skipped", message="not run: the campaign was interrupted")
        elif summary["status"] == "failed":
            crashed = [r for r in records if r["verdict"] == "error"]
            counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items() if v)
            if crashed and len(crashed) == len(records):
                errors += 1
                error = ET.SubElement(case, "error", message=crashed[0].get("error", ""), type="error")
                error.text = "\n".join(details + [r.get("traceback", "") for r in crashed])
            else:
                failures += 1
                message = (f"expected {entry.expect}, got {records[0]['verdict']}" if summary["runs"] == 1
                           else f"expected {policy_text(entry)}, got {counts}")
                failure = ET.SubElement(case, "failure", type="verdict", message=message)
                failure.text = "\n".join(details)
        ET.SubElement(case, "system-out").text = "\n".join(details)
    suite.set("tests", str(len(summaries)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    suite.set("time", f"{total:.3f}")
    suites = ET.Element("testsuites", name="tectonic", tests=str(len(summaries)), failures=str(failures),
                        errors=str(errors), skipped=str(skipped), time=f"{total:.3f}")
    suites.append(suite)
    ET.indent(suites)
    path = os.path.join(campaign_dir, "junit.xml")
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
    return path


def _details(entry, summary: dict, policy: str) -> list[str]:
    """The explanation of an entry, for people reading CI: the policy, what happened, the
    bug-finding figures, and per run where it is stored and how to repeat it (the runs
    that missed the expectation first)."""
    counts = summary["counts"]
    lines = [f"expected: {policy}",
             "verdicts: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v)]
    if summary["runs"] == 1 and summary["records"][0] is not None:
        lines.append(f"verdict: {summary['records'][0]['verdict']}")
    lines.append(f"found in {summary['found']} of {summary['runs']} runs"
                 + (f" (seeds {', '.join(map(str, summary['found_seeds']))})" if summary["found_seeds"] else ""))
    if summary["ttd_median"] is not None:
        lines.append(f"time to detection: median {summary['ttd_median']:.1f} s, max {summary['ttd_max']:.1f} s")
    records = [r for r in summary["records"] if r is not None]
    for rec in sorted(records, key=lambda r: r["passed"]):
        head = f"run seed {rec.get('seed')}: {rec['verdict']}"
        if rec.get("anomalies"):
            head += f" ({', '.join(rec['anomalies'])})"
        if rec.get("error"):
            lines.append(f"{head}: {rec['error']}")
        if rec.get("run_dir"):
            lines += [head, f"  run dir: {rec['run_dir']}",
                      f"  report: {os.path.join(rec['run_dir'], 'report.html')}",
                      f"  repeat: {repeat_command(rec['run_dir'])}"]
    return lines
