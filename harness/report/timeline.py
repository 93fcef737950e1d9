"""timeline.html: one column per process, one box per op (invoke to completion).

Built to stay usable on 100,000-op histories: the ops travel as compact columnar JSON
(indices into tables of f names and nodes, microsecond integers, long values cut), and a
small inline script draws only the boxes in view (the sheet is as tall as the test lasts,
but the DOM holds a few hundred boxes at a time). Hovering a box shows its details.
"""
from __future__ import annotations

import json
import os
from typing import Any

from core.history import NEMESIS
from core.history.faults import fault_periods

from .html import esc, script_json
from .ops import has_times, intervals

_TYPE_CODES = {"ok": 0, "fail": 1, "info": 2, "open": 3}
_VALUE_LIMIT = 160


def write_timeline(run_dir: str, history: list[dict], title: str = "") -> str:
    """Write run_dir/timeline.html for `history`; return its path."""
    path = os.path.join(run_dir, "timeline.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_timeline(history, title))
    return path


def _clip(value: Any) -> Any:
    """The value itself when short, else the start of its JSON as a string: a read of a
    long list would otherwise repeat the whole list in every box's data."""
    text = json.dumps(value, separators=(",", ":"), default=repr, ensure_ascii=False)
    return value if len(text) <= _VALUE_LIMIT else text[:_VALUE_LIMIT] + "…"


def _column_order(p: Any) -> tuple:
    if p == NEMESIS:
        return (2, 0, "")
    if isinstance(p, int):
        return (0, p, "")
    return (1, 0, str(p))


def timeline_data(history: list[dict]) -> dict:
    """The compact form the page's script reads (times in µs, or positions when the
    history has no times)."""
    timed = has_times(history)
    scale = 1000 if timed else 1
    ops = sorted(intervals(history, include_nemesis=True), key=lambda o: o.start)
    processes = sorted({op.process for op in ops}, key=_column_order)
    column = {p: i for i, p in enumerate(processes)}
    fs: dict[str, int] = {}
    nodes: dict[str, int] = {}
    data: dict[str, Any] = {"c": [], "s": [], "e": [], "t": [], "f": [], "n": [], "v": [], "r": {}, "x": {}}
    for i, op in enumerate(ops):
        data["c"].append(column[op.process])
        data["s"].append(op.start // scale)
        data["e"].append(-1 if op.end is None else op.end // scale)
        data["t"].append(_TYPE_CODES.get(op.type, 2))
        data["f"].append(fs.setdefault(str(op.f), len(fs)))
        data["n"].append(-1 if op.node is None else nodes.setdefault(str(op.node), len(nodes)))
        data["v"].append(_clip(op.value))
        if op.result != op.value:
            data["r"][i] = _clip(op.result)
        if op.error is not None:
            data["x"][i] = _clip(op.error)
    last = max([0] + data["s"] + data["e"])
    data.update(
        procs=[str(p) if p == NEMESIS else f"p{p}" if isinstance(p, int) else str(p) for p in processes],
        fs=list(fs), nodes=list(nodes), unit="us" if timed else "op", end=last,
        faults=[[p.kind, p.start // scale, p.end // scale, _clip(p.started_with), p.stopped]
                for p in (fault_periods(history) if timed else [])])
    return data


def render_timeline(history: list[dict], title: str = "") -> str:
    data = timeline_data(history)
    heading = f"Timeline{': ' + title if title else ''}"
    return (_PAGE.replace("__TITLE__", esc(heading))
            .replace("__DATA__", script_json(data)))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { margin: 0; font: 13px/1.3 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328; }
#top { position: absolute; top: 0; left: 0; right: 0; height: 48px; padding: 6px 12px; border-bottom: 1px solid #d1d9e0;
       display: flex; gap: 14px; align-items: center; background: #f6f8fa; }
#top h1 { font-size: 16px; margin: 0; }
#top button { font: inherit; padding: 2px 10px; }
.key { display: inline-block; width: 12px; height: 12px; border: 1px solid #0003; vertical-align: -2px; margin: 0 3px 0 8px; }
#colhdr { position: absolute; top: 49px; left: 80px; right: 0; height: 24px; overflow: hidden; border-bottom: 1px solid #d1d9e0; }
#colhdrIn { position: relative; height: 24px; }
#colhdrIn div { position: absolute; top: 4px; width: 110px; text-align: center; font-weight: 600; }
#gut { position: absolute; top: 74px; left: 0; width: 80px; bottom: 0; overflow: hidden; border-right: 1px solid #d1d9e0; }
#gut div { position: absolute; right: 6px; font: 11px ui-monospace, Menlo, monospace; color: #59636e; }
#wrap { position: absolute; top: 74px; left: 80px; right: 0; bottom: 0; overflow: auto; }
#sheet { position: relative; }
.band { position: absolute; left: 0; right: 0; background: rgba(214, 39, 40, .10); border-top: 1px solid rgba(214,39,40,.5);
        font: 11px system-ui; color: #a31515; padding-left: 4px; pointer-events: none; }
.op { position: absolute; width: 104px; overflow: hidden; white-space: nowrap; font: 11px/12px ui-monospace, Menlo, monospace;
      border-radius: 2px; border: 1px solid #0002; padding: 0 3px; box-sizing: border-box; cursor: default; }
.t0 { background: #6DB6FE; } .t1 { background: #FEB5DA; } .t2 { background: #FFAA26; } .t3 { background: #e0e0e0; }
.nem { background: #c9b3e6; }
.op:hover { outline: 2px solid #000; z-index: 1; }
#tip { position: fixed; display: none; max-width: 520px; background: #fff; border: 1px solid #888; border-radius: 6px;
       padding: 6px 8px; box-shadow: 0 2px 8px #0003; white-space: pre-wrap; word-break: break-all;
       font: 12px/1.35 ui-monospace, Menlo, monospace; z-index: 5; pointer-events: none; }
</style></head>
<body>
<div id="top"><h1>__TITLE__</h1>
<span><button id="zout" title="zoom out">&minus;</button> <button id="zin" title="zoom in">+</button></span>
<span><span class="key t0"></span>ok<span class="key t1"></span>fail<span class="key t2"></span>info (unknown)<span class="key t3"></span>never completed<span class="key nem"></span>nemesis</span>
<span id="status"></span></div>
<div id="colhdr"><div id="colhdrIn"></div></div>
<div id="gut"></div>
<div id="wrap"><div id="sheet"><div id="bands"></div><div id="ops"></div></div></div>
<div id="tip"></div>
<script type="application/json" id="data">__DATA__</script>
<script>
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("data").textContent);
  const N = D.s.length, COLW = 110, PAD = 8, LIMIT = 4000, MAXPX = 3e7;
  const S = Float64Array.from(D.s), E = Float64Array.from(D.e, (e) => e < 0 ? D.end : e);
  const C = Int32Array.from(D.c), NEM = D.procs.indexOf("nemesis");
  const TYPES = ["ok", "fail", "info", "never completed"];
  let maxDur = 0, nemOps = 0; const durs = [];
  for (let i = 0; i < N; i++) { if (C[i] === NEM) nemOps++; const d = E[i] - S[i]; if (d > maxDur) maxDur = d; if (d > 0) durs.push(d); }
  durs.sort((a, b) => a - b);
  const median = durs.length ? durs[durs.length >> 1] : 1;
  const wrap = document.getElementById("wrap"), sheet = document.getElementById("sheet");
  const opsEl = document.getElementById("ops"), bandsEl = document.getElementById("bands");
  const gut = document.getElementById("gut"), hdr = document.getElementById("colhdrIn");
  const tip = document.getElementById("tip"), status = document.getElementById("status");
  const span = Math.max(D.end, 1);
  const fit = Math.max(wrap.clientHeight - 2 * PAD, 100) / span;
  let scale = Math.min(Math.max(16 / median, fit), MAXPX / span);
  hdr.style.width = (D.procs.length * COLW) + "px";
  hdr.innerHTML = D.procs.map((p, i) => `<div style="left:${i * COLW}px">${esc(p)}</div>`).join("");

  function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c])); }
  function show(v) { return typeof v === "string" && v.endsWith("…") ? v : JSON.stringify(v); }
  function when(t) { return D.unit === "us" ? (t / 1e6).toFixed(3) + " s" : "#" + t; }
  function dur(d) { return D.unit === "us" ? (d >= 1e6 ? (d / 1e6).toFixed(2) + " s" : (d / 1e3).toFixed(2) + " ms") : d + " ops"; }

  function layout() {
    sheet.style.height = (span * scale + 2 * PAD) + "px";
    sheet.style.width = (D.procs.length * COLW) + "px";
    bandsEl.innerHTML = D.faults.map((f) => {
      const top = PAD + f[1] * scale, h = Math.max((f[2] - f[1]) * scale, 2);
      return `<div class="band" style="top:${top}px;height:${h}px">${esc(f[0])}${f[4] ? "" : " (never healed)"}</div>`;
    }).join("");
  }

  function upper(t) { let lo = 0, hi = N; while (lo < hi) { const m = (lo + hi) >> 1; if (S[m] <= t) lo = m + 1; else hi = m; } return lo; }

  function render() {
    pending = false;
    const top = wrap.scrollTop, h = wrap.clientHeight, left = wrap.scrollLeft;
    const t0 = (top - PAD) / scale - median, t1 = (top + h) / scale + median;
    const c0 = Math.floor(left / COLW) - 1, c1 = Math.ceil((left + wrap.clientWidth) / COLW) + 1;
    const inView = [];
    for (let i = upper(t1) - 1; i >= 0; i--) {
      if (S[i] < t0 - maxDur) break;
      if (E[i] >= t0 && C[i] >= c0 && C[i] <= c1) inView.push(i);
    }
    // Zoomed far out, more boxes overlap than a page can hold: draw an even sample.
    const stride = Math.ceil(inView.length / LIMIT) || 1, out = [];
    for (let k = 0; k < inView.length; k += stride) {
      const i = inView[k];
      const y = PAD + S[i] * scale, bh = Math.max((E[i] - S[i]) * scale, C[i] === NEM ? 4 : 2);
      const cls = C[i] === NEM ? "nem" : "t" + D.t[i];
      const label = bh >= 12 ? esc(D.fs[D.f[i]] + " " + show(i in D.r ? D.r[i] : D.v[i])) : "";
      out.push(`<div class="op ${cls}" data-i="${i}" style="top:${y}px;left:${C[i] * COLW + 3}px;height:${bh}px">${label}</div>`);
    }
    opsEl.innerHTML = out.join("");
    hdr.style.transform = `translateX(${-left}px)`;
    const step = niceStep(90 / scale), ticks = [];
    for (let t = Math.max(0, Math.floor(t0 / step) * step); t <= t1; t += step)
      ticks.push(`<div style="top:${PAD + t * scale - top - 6}px">${when(t)}</div>`);
    gut.innerHTML = ticks.join("");
    status.textContent = `${(N - nemOps).toLocaleString()} ops` + (nemOps ? ` + ${nemOps} nemesis` : "") +
      `, ${D.procs.length - (NEM >= 0 ? 1 : 0)} processes, ${when(D.end)}; drawing ${out.length}` +
      (stride > 1 ? ` of ${inView.length} in view (zoom in to see all)` : "");
    document.body.dataset.rendered = String(out.length);
  }

  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-9))));
    for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
    return 10 * p;
  }

  let pending = false;
  function schedule() { if (!pending) { pending = true; requestAnimationFrame(render); } }

  function zoom(factor) {
    const mid = (wrap.scrollTop + wrap.clientHeight / 2 - PAD) / scale;
    scale = Math.min(Math.max(scale * factor, fit), MAXPX / span);
    layout();
    wrap.scrollTop = mid * scale + PAD - wrap.clientHeight / 2;
    render();
  }

  opsEl.addEventListener("mousemove", (ev) => {
    const box = ev.target.closest(".op");
    if (!box) { tip.style.display = "none"; return; }
    const i = +box.dataset.i, lines = [];
    const who = D.procs[C[i]];
    lines.push(`${who}  ${D.fs[D.f[i]]}  ${C[i] === NEM ? "nemesis" : TYPES[D.t[i]]}`);
    lines.push(`value:  ${show(D.v[i])}`);
    if (i in D.r) lines.push(`result: ${show(D.r[i])}`);
    if (i in D.x) lines.push(`error:  ${show(D.x[i])}`);
    if (D.n[i] >= 0) lines.push(`node:   ${D.nodes[D.n[i]]}`);
    lines.push(D.e[i] < 0 ? `invoked ${when(S[i])}, never completed`
                          : `${when(S[i])} → ${when(E[i])}  (${dur(E[i] - S[i])})`);
    tip.textContent = lines.join("\\n");
    tip.style.display = "block";
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - 540) + "px";
    tip.style.top = Math.min(ev.clientY + 14, window.innerHeight - 140) + "px";
  });
  opsEl.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  wrap.addEventListener("scroll", schedule, {passive: true});
  window.addEventListener("resize", schedule);
  document.getElementById("zin").onclick = () => zoom(2);
  document.getElementById("zout").onclick = () => zoom(0.5);
  // timeline.html#t=12.5 opens at 12.5 s (the report links fault periods this way).
  function jump() {
    const m = /[#&]t=([0-9.]+)/.exec(location.hash);
    if (!m) return;
    const t = D.unit === "us" ? parseFloat(m[1]) * 1e6 : parseFloat(m[1]);
    wrap.scrollTop = Math.max(0, t * scale + PAD - 40);
    // Processes retire (after an info) and new columns start: show one active then.
    const i = Math.min(upper(t), N - 1), x = C[i] * COLW;
    if (i >= 0 && (x < wrap.scrollLeft || x + COLW > wrap.scrollLeft + wrap.clientWidth))
      wrap.scrollLeft = Math.max(0, x - COLW);
  }
  window.addEventListener("hashchange", () => { jump(); schedule(); });
  layout();
  jump();
  render();
})();
</script></body></html>
"""
