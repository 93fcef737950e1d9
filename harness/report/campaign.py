"""A campaign's outputs: campaign.html (a table linking each run's report) and junit.xml
(one testcase per run, a failure when the verdict differs from the expectation), so CI
systems show a campaign like a test suite.

`records` pairs each planned run (label, spec, expect) with what happened: a dict with
verdict (valid / invalid / unknown / error), passed, run_dir, seconds, anomalies, error;
or None when the run has not happened (an interrupted campaign).
"""
from __future__ import annotations

import datetime as dt
import os
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote

from .html import compact_json, esc, page, verdict_badge
from .rundir import repeat_command


def write_campaign_html(campaign_dir: str, name: str, records: list[tuple[Any, dict | None]]) -> str:
    rows = []
    for item, rec in records:
        spec = item.spec
        cells = [esc(item.label)] + [esc(compact_json(spec.get(k)) if isinstance(spec.get(k), list) else spec.get(k, ""))
                                     for k in ("target", "workload", "nemesis", "bugs", "seed")]
        cells.append(esc(item.expect))
        if rec is None:
            cells += ['<span class="muted">not run</span>', "", "", ""]
        else:
            verdict = verdict_badge(rec["verdict"]) if rec["verdict"] != "error" else \
                f'<span class="verdict invalid">ERROR</span> <code>{esc(rec.get("error", ""))}</code>'
            mark = '<b style="color:var(--ok)">as expected</b>' if rec["passed"] else \
                '<b style="color:var(--bad)">NOT as expected</b>'
            link = ""
            if rec.get("run_dir"):
                rel = os.path.relpath(os.path.join(rec["run_dir"], "report.html"), campaign_dir)
                link = f'<a href="{esc(quote(rel))}">report</a>'
            cells += [verdict + " " + esc(", ".join(rec.get("anomalies") or [])), mark,
                      f'{rec["seconds"]:.1f}', link]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    passed = sum(1 for _, r in records if r is not None and r["passed"])
    failed = sum(1 for _, r in records if r is not None and not r["passed"])
    pending = sum(1 for _, r in records if r is None)
    word, badge = ("invalid", "FAILED") if failed else ("unknown", "INCOMPLETE") if pending else ("valid", "PASSED")
    headline = (f"{passed} of {len(records)} runs as expected" + (f", {failed} not" if failed else "")
                + (f", {pending} not run yet" if pending else ""))
    head = "".join(f"<th>{h}</th>" for h in ("run", "target", "workload", "nemesis", "bugs", "seed",
                                              "expected", "verdict", "", "seconds", ""))
    body = (f"<h1>Campaign {esc(name)}</h1>"
            f'<div class="banner {word}"><span class="verdict {word}">{badge}</span><b>{esc(headline)}</b></div>'
            f"<table><tr>{head}</tr>{''.join(rows)}</table>")
    path = os.path.join(campaign_dir, "campaign.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page(f"campaign {name}", body))
    return path


def write_junit(campaign_dir: str, name: str, records: list[tuple[Any, dict | None]]) -> str:
    suite = ET.Element("testsuite", name=name, timestamp=dt.datetime.now().isoformat(timespec="seconds"))
    failures = errors = skipped = 0
    total = 0.0
    for item, rec in records:
        case = ET.SubElement(suite, "testcase", classname=f"tectonic.{name}", name=item.label)
        if rec is None:
            skipped += 1
            ET.SubElement(case, "skipped", message="not run: the campaign was interrupted")
            continue
        case.set("time", f"{rec['seconds']:.3f}")
        total += rec["seconds"]
        details = [f"expected: {item.expect}", f"verdict: {rec['verdict']}"]
        if rec.get("anomalies"):
            details.append(f"anomalies: {', '.join(rec['anomalies'])}")
        if rec.get("run_dir"):
            details += [f"run dir: {rec['run_dir']}",
                        f"report: {os.path.join(rec['run_dir'], 'report.html')}",
                        f"repeat: {repeat_command(rec['run_dir'])}"]
        if rec["verdict"] == "error":
            errors += 1
            error = ET.SubElement(case, "error", message=rec.get("error", ""), type="error")
            error.text = rec.get("traceback", "")
        elif not rec["passed"]:
            failures += 1
            failure = ET.SubElement(case, "failure", type="verdict",
                                    message=f"expected {item.expect}, got {rec['verdict']}")
            failure.text = "\n".join(details)
        ET.SubElement(case, "system-out").text = "\n".join(details)
    suite.set("tests", str(len(records)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    suite.set("time", f"{total:.3f}")
    suites = ET.Element("testsuites", name="tectonic", tests=str(len(records)), failures=str(failures),
                        errors=str(errors), skipped=str(skipped), time=f"{total:.3f}")
    suites.append(suite)
    ET.indent(suites)
    path = os.path.join(campaign_dir, "junit.xml")
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
    return path
