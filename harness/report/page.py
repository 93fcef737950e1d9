"""report.html: one self-contained page per run, the verdict first.

Then how to repeat the run, what each checker found (in words, with its pictures), the
plots with fault periods shaded, the faults, the operations, the spec and the files. The
plots are embedded (base64) and also written beside the page; links point only at files
in the run directory.
"""
from __future__ import annotations

import os
from collections import Counter
from urllib.parse import quote

import yaml

from core.history import HistoryError, load_history
from core.history.faults import fault_periods

from .explain import checker_section
from .html import compact_json, data_uri, esc, page, verdict_badge
from .ops import has_times, intervals
from .plots import PLOT_FILES, write_plots
from .rundir import read_results, read_spec, repeat_command, run_started
from .summary import anomaly_types, describe_failures, verdict_word
from .timeline import write_timeline

_PLOT_CAPTIONS = {
    "latency": "Latency of every operation (ok, fail and info marked apart); shaded: faults in force.",
    "rate": "Throughput of completions over time, by function and outcome.",
    "latency-quantiles": "Latency quantiles over time, by function.",
}


def write_report(run_dir: str) -> str:
    """Write run_dir/report.html (and the plots and timeline.html beside it); return the
    report's path. Works on any run directory, also one whose run crashed part way."""
    run_dir = os.path.realpath(run_dir)  # store/latest names the run by its own directory
    spec = read_spec(run_dir)
    results = read_results(run_dir)
    try:
        history = load_history(os.path.join(run_dir, "history.jsonl"))
        history_error = None
    except HistoryError as e:
        history, history_error = [], str(e)
    name = spec.get("name") or os.path.basename(os.path.dirname(os.path.abspath(run_dir)))

    sections = [_verdict(name, run_dir, results), _repeat(run_dir, spec)]
    if results:
        sections.append("<h2>What the checkers found</h2>" + "\n".join(
            checker_section(n, r, run_dir) for n, r in (results.get("checkers") or {}).items()
            if isinstance(r, dict)))
    if history_error:
        sections.append(f"<h2>History</h2><p>The history could not be read: <code>{esc(history_error)}</code></p>")
    elif history:
        try:
            sections.append(_history_sections(run_dir, history, name))
        except HistoryError as e:  # well-formed lines, but not a well-formed history
            sections.append(f"<h2>History</h2><p>The history is malformed: <code>{esc(e)}</code></p>")
    sections.append("<h2>Spec</h2><pre>" + esc(yaml.safe_dump(spec, sort_keys=False)) + "</pre>")
    sections.append(_files(run_dir))

    path = os.path.join(run_dir, "report.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page(f"{name}: {verdict_word(results.get('valid')) if results else 'unknown'}",
                     "\n".join(sections)))
    return path


def _verdict(name: str, run_dir: str, results: dict | None) -> str:
    word = verdict_word(results.get("valid")) if results else "unknown"
    started = run_started(run_dir)
    when = f'<span class="muted">run of {started:%Y-%m-%d %H:%M:%S}</span>' if started else ""
    found = anomaly_types(results)
    if results is None:
        headline = "No results.json: the run did not reach its checkers (see tectonic.log)."
    elif word == "valid":
        headline = "Every checker passed."
    else:
        headline = (f"Found: {', '.join(found)}." if found else
                    str(results.get("error") or "The checkers could not decide."))
    detail = "" if word == "valid" or results is None else f"<pre>{esc(describe_failures(results))}</pre>"
    return (f"<h1>{esc(name)}</h1>{when}"
            f'<div class="banner {word}">{verdict_badge(word)}<b>{esc(headline)}</b>{detail}</div>')


def _repeat(run_dir: str, spec: dict) -> str:
    seed = spec.get("seed")
    facts = [f"{k}: <b>{esc(compact_json(spec[k]) if isinstance(spec[k], (list, dict)) else spec[k])}</b>"
             for k in ("target", "workload", "nemesis", "bugs", "node_count", "concurrency",
                       "time_limit", "rate", "seed") if k in spec]
    return ("<h2>Repeat this run</h2>"
            f"<p>The spec holds the seed{f' ({esc(seed)})' if seed is not None else ''}; "
            "running it again repeats the same schedule of operations and faults:</p>"
            f"<pre>{esc(repeat_command(run_dir))}</pre>"
            f'<p class="muted">{" &middot; ".join(facts)}</p>')


def _history_sections(run_dir: str, history: list[dict], name: str) -> str:
    write_timeline(run_dir, history, name)
    ops = intervals(history)
    periods = fault_periods(history)
    parts = ['<h2>Operations</h2><p><a href="timeline.html">Timeline of every operation</a> '
             "(one column per process; hover a box for details).</p>", _op_counts(ops)]
    if has_times(history):
        end = max(op["time"] for op in history)
        parts.append(_faults(periods))
        plots = write_plots(run_dir, ops, periods, end)
        parts.append("<h2>Plots</h2>")
        for plot, path in plots.items():
            parts.append(f'<h3>{esc(plot)} <a class="muted" href="{esc(PLOT_FILES[plot])}">'
                         f'({esc(PLOT_FILES[plot])})</a></h3><p class="muted">{esc(_PLOT_CAPTIONS[plot])}</p>'
                         f'<img class="plot" alt="{esc(plot)}" src="{data_uri(path, "image/png")}">')
    else:
        parts.append('<p class="muted">The history carries no times: no plots.</p>')
    return "\n".join(parts)


def _op_counts(ops) -> str:
    counts = Counter((str(op.f), op.type) for op in ops)
    fs = sorted({f for f, _ in counts})
    types = ("ok", "fail", "info", "open")
    head = "".join(f'<th class="num">{"never completed" if t == "open" else t}</th>' for t in types)
    rows = "".join(f"<tr><td>{esc(f)}</td>" + "".join(f'<td class="num">{counts[(f, t)]}</td>' for t in types)
                   + f'<td class="num">{sum(counts[(f, t)] for t in types)}</td></tr>' for f in fs)
    return (f"<table><tr><th>f</th>{head}<th class=\"num\">total</th></tr>{rows}</table>")


def _faults(periods) -> str:
    if not periods:
        return "<h2>Faults</h2><p>The nemesis injected no faults.</p>"
    rows = "".join(
        f"<tr><td>{esc(p.kind)}</td><td class=\"num\"><a href=\"timeline.html#t={p.start / 1e9:.3f}\">"
        f"{p.start / 1e9:.2f}</a></td>"
        f"<td class=\"num\">{p.end / 1e9:.2f}{'' if p.stopped else ' (never healed)'}</td>"
        f"<td class=\"num\">{p.duration / 1e9:.2f}</td><td><code>{esc(compact_json(p.started_with, 300))}</code></td></tr>"
        for p in periods)
    return ("<h2>Faults</h2><table><tr><th>fault</th><th class=\"num\">from (s)</th><th class=\"num\">to (s)</th>"
            f"<th class=\"num\">lasted (s)</th><th>what was done</th></tr>{rows}</table>")


def _files(run_dir: str, limit: int = 300) -> str:
    entries = []
    for root, dirs, files in os.walk(run_dir):
        dirs.sort()
        for fname in sorted(files):
            full = os.path.join(root, fname)
            rel = os.path.relpath(full, run_dir)
            entries.append(f'<li><a href="{esc(quote(rel))}">{esc(rel)}</a> '
                           f'<span class="muted">{_size(os.path.getsize(full))}</span></li>')
    more = f"<li>… and {len(entries) - limit} more</li>" if len(entries) > limit else ""
    return f"<h2>Files</h2><ul>{''.join(entries[:limit])}{more}</ul>"


def _size(n: float) -> str:
    unit = "B"
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            break
        n /= 1024
    else:
        unit = "GB"
    return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
