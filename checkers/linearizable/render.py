"""A self-contained HTML page per failing key: what Knossos's linear.svg and Porcupine's
visualization show their users, without scripts or styles from the network.

One row per process (with the node it talked to) on a time axis (ordered by the ops' `time` when every op shown has
one, else by their positions in the history, equally spaced so that short ops stay
readable); a box per op from invocation to completion, dashed when
its outcome is unknown; the ops of the longest partial linearization numbered in order,
the op that cannot be linearized in red, the point the search could not get past as a
vertical line. Fault periods (the nemesis's start/stop ops, Porcupine#14) shade the
timeline behind the ops, so a failure can be read against the fault that caused it.
Hovering an op shows it and the model state after it. Long histories are cut to a window
around the failure: the last WINDOW_TAIL linearized ops and the ops concurrent with the
failing one, at most MAX_BOXES boxes and TABLE_ROWS rows, so the page of a 100,000-op
history is as small and quick to open as that of a short one.
"""
from __future__ import annotations

import html
from bisect import bisect_left, bisect_right

from .explain import failure_text, op_ref, op_text

WINDOW_TAIL = 30
MAX_BOXES = 400
TABLE_ROWS = 500
LEFT = 70
ROW = 40
SLOT = 26

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; white-space: pre-wrap; }
svg text { font: 11px monospace; pointer-events: none; }
.op rect { stroke: #555; stroke-width: 1; }
.op:hover rect { stroke: #000; stroke-width: 2.5; }
.lin rect { fill: #bfe3c0; } .bad rect { fill: #f19a9a; stroke: #b00; stroke-width: 2; }
.pending rect { fill: #fbe3a1; } .other rect { fill: #e4e4e4; }
.unknown rect { stroke-dasharray: 4 3; }
#panel { position: sticky; top: 0; background: #fffbe6; border: 1px solid #e0d080;
         padding: .5em .8em; min-height: 2.8em; white-space: pre-wrap; font-family: monospace; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; border-bottom: 1px solid #ddd;
text-align: left; font-family: monospace; } tr.badrow td { background: #f8d0d0; }
.legend span { display: inline-block; padding: 0 .6em; margin-right: .5em; border: 1px solid #555; }
.fault rect { fill: #d62728; fill-opacity: .12; stroke: none; } .fault text { fill: #a02020; }
"""

_SCRIPT = """
var timeline = document.getElementById('timeline');
timeline.scrollLeft = timeline.scrollWidth;  // the failure is at the right end
document.querySelectorAll('g.op').forEach(function (g) {
  g.addEventListener('mouseenter', function () {
    document.getElementById('panel').textContent = g.getAttribute('data-info');
  });
});
"""


def render_failure(key: str, calls: list, model, outcome, failure: dict, model_name: str,
                   faults: dict | None = None, nodes: dict | None = None) -> str:
    """The page of one failing key: `calls` and `outcome` of its search, `failure` its
    explanation (explain.explain_failure); `faults`: the history's fault periods on each
    clock, {"time": [...], "position": [...]} (core.history.faults.fault_periods);
    `nodes`: the node each process talked to, shown beside the process."""
    bad_id = outcome.stuck_at
    order = {cid: n for n, (cid, _) in enumerate(outcome.path, 1)}
    after = {cid: state for cid, state in outcome.path}
    shown = _window(calls, outcome, bad_id)
    svg = _timeline(calls, model, shown, order, after, bad_id, outcome, faults or {}, nodes or {})
    esc = html.escape
    text = "\n".join(failure_text(key, failure))
    rows = []
    path = outcome.path[-TABLE_ROWS:]
    first = len(outcome.path) - len(path) + 1
    for n, (cid, state) in enumerate(path, first):
        ref = op_ref(calls[cid], model)
        rows.append(f"<tr><td>{n}</td><td>{esc(op_text(ref))}</td><td>{esc(model.describe(state))}</td></tr>")
    rows.append(f"<tr class='badrow'><td>-</td><td>{esc(op_text(failure['op']))}</td>"
                f"<td>cannot follow; reachable states: {esc('; '.join(failure['final_states']))}</td></tr>")
    cut = (f"<p>The first {first - 1} ops of the partial linearization are not listed.</p>"
           if first > 1 else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>key {esc(key)}: not linearizable</title>
<style>{_STYLE}</style></head><body>
<h1>Key {esc(key)} is not linearizable ({esc(model_name)})</h1>
<p class="legend"><span style="background:#bfe3c0">linearized (numbered in order)</span>
<span style="background:#f19a9a">cannot be linearized</span>
<span style="background:#fbe3a1">concurrent, not linearized</span>
<span style="background:#e4e4e4">other</span>
<span style="border-style:dashed">outcome unknown (info / never completed)</span>
<span style="background:#f7dcdc;border-color:#f7dcdc">fault in force</span></p>
<div id="panel">Hover over an operation to see it and the state after it.</div>
{svg}
<h2>Explanation</h2>
<pre>{esc(text)}</pre>
<h2>Longest partial linearization ({len(outcome.path)} ops)</h2>
{cut}<table><tr><th>#</th><th>op</th><th>state after</th></tr>
{''.join(rows)}
</table>
<script>{_SCRIPT}</script>
</body></html>
"""


def _window(calls, outcome, bad_id) -> list[int]:
    bad = calls[bad_id]
    focus = {cid for cid, _ in outcome.path[-WINDOW_TAIL:]} | {bad_id}
    focus |= {i for i, c in enumerate(calls)
              if c.inv < bad.end and c.end is not None and c.end > bad.inv}
    lo = min(calls[i].inv for i in focus)
    hi = bad.end
    inside = [i for i, c in enumerate(calls)
              if i in focus or (c.inv <= hi and (c.end if c.end is not None else c.inv) >= lo)]
    return sorted(inside, key=lambda i: calls[i].inv)[-MAX_BOXES:]


def _timeline(calls, model, shown, order, after, bad_id, outcome, faults: dict,
              nodes: dict) -> str:
    use_time = all(isinstance(calls[i].t0, (int, float)) and
                   (calls[i].end is None or isinstance(calls[i].t1, (int, float))) for i in shown)

    def span(c):
        return (c.t0, c.t1) if use_time else (c.inv, c.end)

    # Equal spacing by rank keeps short ops readable next to long ones and closes the
    # gaps left by ops that are not drawn; the exact times are in the hover text.
    coords = sorted({t for i in shown for t in span(calls[i]) if t is not None})
    slot_of = {t: n for n, t in enumerate(coords)}
    width = SLOT * (len(coords) + 1) + 100

    def x(t):
        return 8 + slot_of[t] * SLOT

    processes = sorted({calls[i].process for i in shown}, key=lambda p: (not isinstance(p, int), str(p)))
    row_of = {p: n for n, p in enumerate(processes)}
    height = ROW * len(processes) + 50
    # Process names in their own column, so they stay in view while the timeline scrolls.
    names = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{LEFT}" height="{height}">']
    for p, n in row_of.items():
        label = (f"p{p}" if isinstance(p, int) else str(p)) + (f" {nodes[p]}" if p in nodes else "")
        names.append(f'<text x="4" y="{n * ROW + 50}">{html.escape(label)}</text>')
    names.append("</svg>")
    parts = ['<div style="display:flex">', *names,
             f'<div id="timeline" style="overflow-x:auto"><svg xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}">']
    for n in range(len(processes)):
        y = n * ROW + 65
        parts.append(f'<line x1="0" x2="{width}" y1="{y}" y2="{y}" stroke="#eee"/>')
    parts.extend(_fault_bands(faults.get("time" if use_time else "position", ()), coords, width, height))
    bad = calls[bad_id]
    stuck_x = x(span(bad)[1]) + SLOT - 2
    parts.append(f'<line x1="{stuck_x}" x2="{stuck_x}" y1="14" y2="{height - 20}" '
                 f'stroke="#b00" stroke-dasharray="6 4"/>'
                 f'<text x="{stuck_x + 4}" y="16" fill="#b00">furthest point</text>')
    finals = "; ".join(sorted({model.describe(s) for _, s, _ in outcome.finals}))
    for i in shown:
        c = calls[i]
        t0, t1 = span(c)
        x0 = x(t0) + 2
        # An op of unknown outcome may take effect any time after its invocation.
        x1 = width - 100 if c.ret is None or t1 is None else x(t1) + SLOT - 4
        y = row_of[c.process] * ROW + 30
        ref = op_ref(c, model)
        if i == bad_id:
            cls, info = "bad", f"CANNOT BE LINEARIZED: {op_text(ref)}\nreachable states before it: {finals}"
        elif i in order:
            cls = "lin"
            info = f"#{order[i]} {op_text(ref)}\nafter it: {model.describe(after[i])}"
        elif c.inv < bad.end:
            cls, info = "pending", f"{op_text(ref)}\nnot in the partial linearization"
        else:
            cls, info = "other", f"{op_text(ref)}\ninvoked after the furthest point"
        if c.ret is None:
            cls += " unknown"
        when = f"invoked at {'time ' if use_time else 'position '}{t0}" + (
            f", completed at {t1}" if t1 is not None else ", never completed")
        info += "\n" + when
        number = f"#{order[i]}" if i in order else ("X" if i == bad_id else "")
        w = max(x1 - x0, 6)
        parts.append(f'<g class="op {cls}" data-info="{html.escape(info)}">'
                     f'<title>{html.escape(info)}</title>'
                     f'<rect x="{x0}" y="{y}" width="{w}" height="32" rx="3"/>'
                     f'<text x="{x0 + 3}" y="{y + 13}">{html.escape(_fit(number, w))}</text>'
                     # The failing op's words are never cut: they may run past its box.
                     f'<text x="{x0 + 3}" y="{y + 27}">'
                     f'{html.escape(ref["op"] if i == bad_id else _fit(ref["op"], w))}</text></g>')
    axis = ("ops placed in order of their times (`time`), equally spaced" if use_time
            else "ops placed in order of their positions in the history, equally spaced")
    parts.append(f'<text x="8" y="{height - 6}">{html.escape(axis)}</text>')
    parts.append("</svg></div></div>")
    return "\n".join(parts)


def _fault_bands(periods, coords: list, width: int, height: int) -> list[str]:
    """A shaded band per fault period overlapping the drawn window, from the first drawn
    instant at or after its start to the last at or before its end. The axis is by rank
    and a box reaches almost to the next slot, so a band's edges sit on slot boundaries:
    between the boxes it separates."""
    bands = []
    for p in periods:
        if not coords or p.end < coords[0] or p.start > coords[-1]:
            continue
        first, last = bisect_left(coords, p.start), bisect_right(coords, p.end) - 1
        x0 = 0 if p.start <= coords[0] else 8 + first * SLOT - 1
        x1 = width if p.end >= coords[-1] else 8 + (last + 1) * SLOT - 1
        if x1 <= x0:
            continue
        what = f"fault {p.kind} in force" + ("" if p.stopped else " (never stopped)")
        detail = f"{what}: {p.started_with!r}"[:300]
        bands.append(f'<g class="fault"><title>{html.escape(detail)}</title>'
                     f'<rect x="{x0}" y="20" width="{x1 - x0}" height="{height - 40}"/>'
                     f'<text x="{x0 + 3}" y="30">{html.escape(p.kind)}</text></g>')
    return bands


def _fit(label: str, width: float) -> str:
    room = int(width / 6.7)
    if len(label) <= room:
        return label
    return label[:max(room - 1, 0)] + "…" if room > 1 else ""
