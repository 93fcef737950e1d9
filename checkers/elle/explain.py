"""Cycles and other anomalies in words a person can check, and as Graphviz drawings.

A cycle is told as numbered steps, one per dependency: who wrote or read what, and why
that orders the two transactions; the last step closes the loop. The same cycle is drawn
as a DOT file (and an SVG when Graphviz's `dot` is installed). Files go to
`<out_dir>/elle/<anomaly>.txt` (every cycle) and `<out_dir>/elle/<anomaly>/<n>.dot|.svg`
(the first few: checker.DRAWINGS_PER_TYPE).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

from .graph import PROCESS, REALTIME

_COLORS = {"ww": "#1f77b4", "wr": "#2ca02c", "rw": "#d62728", "realtime": "#9467bd",
           "process": "#ff7f0e"}

_MEANING = {
    "G0": "a cycle of write-write dependencies alone (dirty write)",
    "G1c": "a cycle of write-write and write-read dependencies (circular information flow)",
    "G-single-item": "a cycle with exactly one read-write anti-dependency (read skew)",
    "G-nonadjacent-item": "a cycle whose read-write anti-dependencies are never adjacent",
    "G2-item": "a cycle with two adjacent read-write anti-dependencies (write skew)",
}


def meaning(cycle_type: str) -> str:
    base = cycle_type.replace("-realtime", "").replace("-process", "")
    text = _MEANING.get(base, "a dependency cycle")
    if cycle_type.endswith("-realtime"):
        text += ", closed by real-time order"
    elif cycle_type.endswith("-process"):
        text += ", closed by a process's own order"
    return text


class CycleWriter:
    """Renders cycles of one analysis (list-append or rw-register) into steps and text."""

    def __init__(self, analysis):
        self.analysis = analysis
        self.txns = analysis.txns

    def steps(self, cycle) -> list[dict]:
        """Elle's step maps for a cycle: step i explains nodes[i] -> nodes[i+1]."""
        txns, out = self.txns, []
        for a, b, label in zip(cycle.nodes, cycle.nodes[1:], cycle.labels):
            if label == REALTIME:
                out.append({"type": "realtime", "a'": txns.index[a], "b": txns.invoke_index(b)})
            elif label == PROCESS:
                out.append({"type": "process", "process": txns.process[a]})
            else:
                out.append(self.analysis.explain(a, b, label))
        return out

    def text(self, cycle, steps: list[dict], number: int) -> str:
        txns = self.txns
        names = {}
        for node in cycle.nodes[:-1]:
            names.setdefault(node, f"T{len(names) + 1}")
        lines = [f"{cycle.type} #{number}: {meaning(cycle.type)}", "Let:"]
        lines += [f"  {name} = {txns.describe(node)}" for node, name in names.items()]
        lines += ["", "Then:"]
        for i, (a, b, step) in enumerate(zip(cycle.nodes, cycle.nodes[1:], steps), start=1):
            na, nb = names[a], names[b]
            lines.append(f"  {i}. {na} < {nb} ({step['type']}): {self._step_text(step, a, b, na, nb)}.")
        first = names[cycle.nodes[0]]
        lines.append(f"  So {first} < ... < {first}: {first} would have to precede itself, "
                     f"a contradiction; no order of these transactions explains what they saw.")
        return "\n".join(lines)

    def _step_text(self, step: dict, a: int, b: int, na: str, nb: str) -> str:
        if step["type"] == "realtime":
            completed = step["a'"]
            text = f"{na} completed (op {completed}) before {nb} was invoked (op {step['b']})"
            ta, tb = self.txns.ops[a].get("time"), self.txns.invoke_time(b)
            if isinstance(ta, (int, float)) and isinstance(tb, (int, float)) and tb > ta:
                text += f", {(tb - ta) / 1e9:.3f} s earlier"
            return text + f", so a real-time order puts {na} first"
        if step["type"] == "process":
            return f"process {step['process']} ran {na} before {nb}"
        return self.analysis.step_text(step, na, nb)

    def dot(self, cycle, steps: list[dict], number: int) -> str:
        txns = self.txns
        names: dict[int, str] = {}
        for node in cycle.nodes[:-1]:
            names.setdefault(node, f"T{len(names) + 1}")
        out = [f'digraph "{cycle.type} #{number}" {{',
               '  rankdir=LR;',
               '  node [shape=box, fontname="monospace", fontsize=10];',
               f'  label="{_esc(cycle.type)}: {_esc(meaning(cycle.type))}"; labelloc=t;']
        for node, name in names.items():
            out.append(f'  {name} [label="{name}\\n{_esc(txns.describe(node))}"];')
        for a, b, step in zip(cycle.nodes, cycle.nodes[1:], steps):
            kind = step["type"]
            if kind in ("ww", "wr", "rw"):
                label = f"{kind} {step['key']}"
            else:
                label = kind
            out.append(f'  {names[a]} -> {names[b]} [label="{_esc(label)}", '
                       f'color="{_COLORS[kind]}", fontcolor="{_COLORS[kind]}"];')
        out.append("}")
        return "\n".join(out) + "\n"


def _esc(s) -> str:
    return str(s).replace("\\", "\\\\").replace('"', '\\"')


def other_text(kind: str, cases: list) -> str:
    """Non-cycle anomalies: a sentence on what the anomaly is, then each case as JSON."""
    about = {
        "G1a": "aborted read: a committed transaction read a value written by a failed one",
        "G1b": "intermediate read: a transaction read a value another transaction later "
               "overwrote within itself",
        "internal": "a transaction read something inconsistent with its own earlier reads "
                    "and writes (expected shows what it should have read; \"...\" is an "
                    "unknown prefix)",
        "future-read": "a transaction read a value it only wrote later",
        "dirty-update": "a committed write built directly on writes of failed transactions",
        "duplicate-elements": "a read showed the same appended element more than once",
        "incompatible-order": "two reads of a key that cannot both come from one sequence "
                              "of appends (neither is a prefix of the other)",
        "lost-update": "several committed transactions read the same version of a key and "
                       "all wrote it: all but one update is lost",
        "cyclic-versions": "the version order inferred for a key is cyclic; the named "
                           "source was left out of the inference",
        "empty-transaction-graph": "no dependency between transactions could be inferred, "
                                   "so nothing could be checked",
        "cycle-search-timeout": "the cycle search in a component ran out of time; a "
                                "cycle found by depth-first search stands in for it",
    }.get(kind, "a cycle exists in the subgraph this model must keep acyclic"
          if kind.endswith("-cycle-exists") else kind)
    lines = [f"{kind}: {about}", ""]
    lines += [json.dumps(c, default=str) for c in cases]
    return "\n".join(lines) + "\n"


def write_files(out_dir: str, texts: dict[str, list[str]], dots: dict[str, list[str]],
                others: dict[str, list]) -> None:
    """Writes <out_dir>/elle/: one text file per anomaly type, DOT (and SVG) per cycle."""
    base = os.path.join(out_dir, "elle")
    os.makedirs(base, exist_ok=True)
    for kind, items in texts.items():
        with open(os.path.join(base, f"{kind}.txt"), "w") as f:
            f.write("\n\n\n".join(items) + "\n")
    for kind, cases in others.items():
        with open(os.path.join(base, f"{kind}.txt"), "w") as f:
            f.write(other_text(kind, cases))
    dot_binary = shutil.which("dot")
    for kind, items in dots.items():
        folder = os.path.join(base, kind)
        os.makedirs(folder, exist_ok=True)
        for i, source in enumerate(items, start=1):
            path = os.path.join(folder, f"{i}.dot")
            with open(path, "w") as f:
                f.write(source)
            if dot_binary:
                try:
                    subprocess.run([dot_binary, "-Tsvg", path, "-o", path[:-4] + ".svg"],
                                   check=False, capture_output=True, timeout=20)
                except subprocess.TimeoutExpired:
                    pass  # the DOT file is still there; a drawing is a convenience

