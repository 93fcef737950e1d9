"""latency.png, rate.png and latency-quantiles.png, with the fault periods shaded.

Figures are drawn on the Agg canvas directly (no pyplot), so drawing needs no display and
keeps no global state between runs or threads.
"""
from __future__ import annotations

import os
from collections import defaultdict

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import blended_transform_factory

from core.history.faults import FaultPeriod

from .ops import Interval

PLOT_FILES = {"latency": "latency.png", "rate": "rate.png", "latency-quantiles": "latency-quantiles.png"}

_FAULT_COLOURS = {"partition": "#d62728", "kill": "#444444", "pause": "#9467bd",
                  "clock": "#ff7f0e", "loss": "#1f77b4", "delay": "#2ca02c",
                  "duplicate": "#17becf", "fault": "#8c564b"}
_SPARE_COLOURS = ["#e377c2", "#bcbd22", "#7f7f7f"]
_TYPE_MARKERS = {"ok": ("o", "ok"), "fail": ("x", "fail"), "info": ("^", "info (unknown)")}
_QUANTILES = [(0.5, "-", "p50"), (0.95, "--", "p95"), (0.99, "-.", "p99"), (1.0, ":", "max")]
NS_PER_S = 1e9


def write_plots(run_dir: str, ops: list[Interval], periods: list[FaultPeriod],
                end: int) -> dict[str, str]:
    """Draw the three plots into run_dir; return {plot name: file path}. `ops` are client
    intervals with times in ns; `end` is the history's last time, so a fault still in force
    at the end is shaded up to it."""
    done = [op for op in ops if op.end is not None]
    fs = sorted({str(op.f) for op in done})
    colours = {f: f"C{i % 10}" for i, f in enumerate(fs)}
    horizon = max(end, 1) / NS_PER_S
    paths = {}
    for name, draw in (("latency", _latency), ("rate", _rate), ("latency-quantiles", _quantiles)):
        fig = Figure(figsize=(11, 4.2), dpi=100)
        FigureCanvasAgg(fig)
        # Fixed margins, not a layout engine: it would draw every figure twice.
        fig.subplots_adjust(left=0.08, right=0.84, top=0.91, bottom=0.12)
        ax = fig.add_subplot()
        draw(ax, done, fs, colours, horizon)
        fault_handles = _shade_faults(ax, periods)
        ax.set_xlim(0, horizon)
        ax.set_xlabel("time since the test started (s)")
        ax.grid(True, alpha=0.3)
        handles, _ = ax.get_legend_handles_labels()
        if handles or fault_handles:
            ax.legend(handles=handles + fault_handles, loc="upper left", bbox_to_anchor=(1.01, 1),
                      fontsize=8, frameon=False)
        path = os.path.join(run_dir, PLOT_FILES[name])
        fig.savefig(path)
        paths[name] = path
    return paths


def _latency(ax, done, fs, colours, horizon):
    groups: dict[tuple[str, str], list[Interval]] = defaultdict(list)
    for op in done:
        groups[(str(op.f), op.type)].append(op)
    for (f, typ), group in sorted(groups.items()):
        marker = _TYPE_MARKERS.get(typ, ("s", typ))[0]
        x = np.fromiter((op.start for op in group), float, len(group)) / NS_PER_S
        y = np.fromiter((max(op.end - op.start, 1) for op in group), float, len(group)) / 1e6
        ax.plot(x, y, marker, ls="none", ms=3 if marker == "o" else 4, alpha=0.6,
                color=colours[f], mew=0.8, rasterized=True)
    _log_ms_axis(ax)
    ax.set_title("Latency of each operation, by invocation time")
    for f in fs:
        ax.plot([], [], "s", color=colours[f], label=f)
    present = {op.type for op in done}
    for typ, (marker, label) in _TYPE_MARKERS.items():
        if typ in present:
            ax.add_line(Line2D([], [], marker=marker, ls="none", color="#555", label=label))


def _log_ms_axis(ax) -> None:
    """A log latency axis labelled 1, 2, 5, 10, ... ms rather than in powers of ten."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("latency (ms)")


def _bins(horizon: float) -> np.ndarray:
    # About 40 buckets: narrower ones hold too few ops each at ordinary rates (100/s) and
    # the lines turn to noise; half a second when the test is long enough for 20 of them.
    width = max(horizon / 40, min(0.5, horizon / 20))
    return np.arange(0, horizon + width, width)


def _rate(ax, done, fs, colours, horizon):
    bins = _bins(horizon)
    width = bins[1] - bins[0]
    styles = {"ok": "-", "fail": "--", "info": ":"}
    for f in fs:
        for typ, style in styles.items():
            t = [op.end / NS_PER_S for op in done if str(op.f) == f and op.type == typ]
            if not t:
                continue
            counts, _ = np.histogram(t, bins=bins)
            ax.plot(bins[:-1] + width / 2, counts / width, style, color=colours[f], lw=1.2,
                    label=f"{f} {typ}")
    ax.set_ylabel("completions per second")
    ax.set_title(f"Throughput ({width:.2g} s buckets, by completion time)")
    ax.set_ylim(bottom=0)


def _quantiles(ax, done, fs, colours, horizon):
    bins = _bins(horizon)
    width = bins[1] - bins[0]
    for f in fs:
        group = [op for op in done if str(op.f) == f]
        starts = np.array([op.start for op in group], float) / NS_PER_S
        lat = np.array([max(op.end - op.start, 1) for op in group], float) / 1e6
        which = np.digitize(starts, bins) - 1
        present = np.unique(which)
        for q, style, name in _QUANTILES:
            ys = [np.quantile(lat[which == b], q) for b in present]
            ax.plot(bins[present] + width / 2, ys, style, color=colours[f], lw=1.1)
        ax.plot([], [], "-", color=colours[f], label=f)
    for _, style, name in _QUANTILES:
        ax.plot([], [], style, color="#555", label=name)
    _log_ms_axis(ax)
    ax.set_title(f"Latency quantiles ({width:.2g} s buckets, by invocation time)")


def _shade_faults(ax, periods: list[FaultPeriod]) -> list[Patch]:
    """Shade each fault period and name it at the top; one legend entry per kind."""
    kinds = list(dict.fromkeys(p.kind for p in periods))
    colour = {k: _FAULT_COLOURS.get(k, _SPARE_COLOURS[i % len(_SPARE_COLOURS)]) for i, k in enumerate(kinds)}
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for p in periods:
        start, end = p.start / NS_PER_S, p.end / NS_PER_S
        ax.axvspan(start, end, color=colour[p.kind], alpha=0.13, lw=0)
        lane = kinds.index(p.kind)
        ax.text(start, 0.985 - 0.07 * lane, " " + p.kind + ("" if p.stopped else " (never healed)"),
                transform=top, va="top", ha="left", fontsize=7.5, color=colour[p.kind], clip_on=True,
                zorder=5, bbox=dict(facecolor="white", alpha=0.85, edgecolor="none", pad=1))
    return [Patch(color=colour[k], alpha=0.3, label=f"{k} in force") for k in kinds]
