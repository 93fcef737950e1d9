"""Each checker's result as HTML: what it found, in words, with its artefacts.

Elle's results carry anomaly types, explanations of each cycle and pictures of them under
elle/; the linearizability checker's carry an explanation and a counterexample page per
key under linear/. Any other checker is shown by its verdict and its fields.
"""
from __future__ import annotations

import glob
import os
from typing import Any
from urllib.parse import quote

from .html import compact_json, data_uri, esc, pretty_json, verdict_badge
from .summary import verdict_word

_TEXT_LIMIT = 20000


def checker_section(name: str, result: dict, run_dir: str) -> str:
    word = verdict_word(result.get("valid"))
    parts = [f'<h3 id="checker-{esc(name)}">{esc(name)} {verdict_badge(word)}</h3>']
    if result.get("error"):
        parts.append(f"<p>The checker crashed: <code>{esc(result['error'])}</code></p>")
    if _is_elle(name, result):
        parts.append(_elle(result, run_dir))
    elif _is_linearizable(name, result):
        parts.append(_linearizable(result, run_dir))
    elif isinstance(result.get("by_f"), dict):
        parts.append(_stats(result))
    elif _per_key(result):
        parts.append(_keys_table(result))
    if isinstance(result.get("checkers"), dict):
        for inner, inner_result in result["checkers"].items():
            if isinstance(inner_result, dict):
                parts.append(checker_section(f"{name}.{inner}", inner_result, run_dir))
    parts.append(f"<details><summary>all fields of the {esc(name)} result</summary>"
                 f"<pre>{esc(pretty_json(result))}</pre></details>")
    return "\n".join(parts)


def _is_elle(name: str, result: dict) -> bool:
    return "anomaly-types" in result or name.split(".")[-1] == "elle"


def _is_linearizable(name: str, result: dict) -> bool:
    return "linear" in name.split(".")[-1] or ("failures" in result and "explanation" in result)


def _text_block(text: Any) -> str:
    if not isinstance(text, str):
        text = pretty_json(text)
    if len(text) > _TEXT_LIMIT:
        text = text[:_TEXT_LIMIT] + f"\n… ({len(text) - _TEXT_LIMIT} more characters)"
    return f"<pre>{esc(text)}</pre>"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _elle(result: dict, run_dir: str) -> str:
    found = [str(a) for a in result.get("anomaly-types") or []]
    parts = []
    if found:
        parts.append(f"<p>Anomalies found: <b>{esc(', '.join(found))}</b>.</p>")
    elif result.get("valid") is True:
        parts.append("<p>No anomalies found.</p>")
    for field, words in (("not", "The history is not"), ("also_not", "It is also not")):
        levels = result.get(field) or result.get(field.replace("_", "-"))
        if levels:
            parts.append(f"<p>{words}: {esc(', '.join(map(str, levels)))}.</p>")
    anomalies = result.get("anomalies") if isinstance(result.get("anomalies"), dict) else {}
    explanations = result.get("explanations")
    names = list(dict.fromkeys(found + list(anomalies) +
                               (list(explanations) if isinstance(explanations, dict) else [])))
    for anomaly in names:
        count = anomalies.get(anomaly)
        n = f" ({len(count)} found)" if isinstance(count, list) else ""
        parts.append(f"<h4>{esc(anomaly)}{n}</h4>")
        told = explanations.get(anomaly) if isinstance(explanations, dict) else None
        parts.append(_elle_artefacts(anomaly, run_dir, told))
    if explanations and not isinstance(explanations, dict):
        parts.append(_text_block(explanations))
    return "\n".join(parts)


_PICTURES_PER_ANOMALY = 5


def _elle_artefacts(anomaly: str, run_dir: str, told) -> str:
    """The cycles in words (the result's explanations, else elle/<anomaly>.txt) and as
    pictures: elle/<anomaly>.svg and elle/<anomaly>/<n>.svg inlined, the DOT source for a
    cycle Graphviz did not draw."""
    elle = os.path.join(run_dir, "elle")
    parts = []
    text_file = os.path.join(elle, anomaly + ".txt")
    if told:
        if isinstance(told, list) and all(isinstance(t, str) for t in told):
            told = "\n\n".join(told)
        parts.append(_text_block(told))
    elif os.path.isfile(text_file):
        parts.append(_text_block(_read(text_file) or ""))
    if os.path.isfile(text_file):
        parts.append(f'<p class="muted">All of them in words: <a href="elle/{esc(quote(anomaly))}.txt">'
                     f"elle/{esc(anomaly)}.txt</a></p>")
    drawings = [os.path.join(elle, anomaly + ext) for ext in (".svg", ".dot")]
    folder = os.path.join(elle, anomaly)
    if os.path.isdir(folder):
        numbered = sorted(os.listdir(folder), key=lambda f: (len(f), f))
        drawings += [os.path.join(folder, f) for f in numbered if f.endswith((".svg", ".dot"))]
    shown = 0
    for path in drawings:
        stem, ext = os.path.splitext(path)
        if not os.path.isfile(path) or (ext == ".dot" and os.path.isfile(stem + ".svg")):
            continue
        if shown == _PICTURES_PER_ANOMALY:
            parts.append(f'<p class="muted">More drawings in <a href="elle/{esc(quote(anomaly))}/">'
                         f"elle/{esc(anomaly)}/</a>.</p>")
            break
        shown += 1
        rel = os.path.relpath(path, run_dir)
        if ext == ".svg":
            # As an <img>, an SVG runs no scripts: safe to show whatever the checker drew.
            parts.append(f'<p><img class="plot" alt="{esc(anomaly)} cycle" '
                         f'src="{data_uri(path, "image/svg+xml")}"><br><a class="muted" href="{esc(quote(rel))}">'
                         f"{esc(rel)}</a></p>")
        else:
            parts.append(f'<details><summary>Graphviz source of a cycle (<a href="{esc(quote(rel))}">{esc(rel)}</a>; '
                         f"install graphviz for a drawing)</summary>{_text_block(_read(path) or '')}</details>")
    return "\n".join(parts)


def _linearizable(result: dict, run_dir: str) -> str:
    parts = []
    failures = result.get("failures") if isinstance(result.get("failures"), dict) else {}
    if failures:
        parts.append(f"<p>{len(failures)} key(s) have no linearization: "
                     f"{esc(', '.join(map(str, failures)))}.</p>")
    elif result.get("valid") is True:
        parts.append("<p>Every key has a linearization consistent with real time.</p>")
    if result.get("explanation"):
        parts.append(_text_block(result["explanation"]))
    pages = {os.path.splitext(os.path.basename(p))[0]: p
             for p in sorted(glob.glob(os.path.join(run_dir, "linear", "*.html")))}
    rows = []
    for key, failure in failures.items():
        link = (f'<a href="linear/{esc(quote(str(key)))}.html">counterexample for {esc(key)}</a>'
                if str(key) in pages else "")
        rows.append(f"<tr><td><code>{esc(key)}</code></td><td>{link}</td><td><details><summary>"
                    f"{esc(_failing_op(failure))}</summary><pre>{esc(pretty_json(failure, 4000))}</pre>"
                    "</details></td></tr>")
    if rows:
        parts.append("<table><tr><th>key</th><th>view</th><th>failure</th></tr>" + "".join(rows) + "</table>")
    extra = [k for k in pages if k not in {str(k2) for k2 in failures}]
    if extra:
        parts.append("<p>Other counterexample views: " +
                     ", ".join(f'<a href="linear/{esc(quote(k))}.html">{esc(k)}</a>' for k in extra) + "</p>")
    return "\n".join(parts)


def _failing_op(failure) -> str:
    """The op a key's linearization got stuck on, in a few words when the checker says."""
    op = failure.get("op") if isinstance(failure, dict) else None
    if isinstance(op, dict) and isinstance(op.get("op"), str):
        who = f" by p{op['process']}" if "process" in op else ""
        at = f" [index {op['index']}]" if "index" in op else ""
        return f"{op['op']}{who}{at}"
    return compact_json(failure, 100)


def _stats(result: dict) -> str:
    rows = []
    for f, counts in sorted(result["by_f"].items()):
        if not isinstance(counts, dict):
            continue
        cells = "".join(f'<td class="num">{esc(counts.get(t, 0))}</td>' for t in ("ok", "fail", "info"))
        rows.append(f"<tr><td>{esc(f)}</td>{cells}</tr>")
    return ('<table><tr><th>f</th><th class="num">ok</th><th class="num">fail</th>'
            f'<th class="num">info</th></tr>{"".join(rows)}</table>')


def _per_key(result: dict) -> bool:
    keys = result.get("keys")
    return isinstance(keys, dict) and bool(keys) and all(isinstance(v, dict) for v in keys.values())


def _keys_table(result: dict, limit: int = 200) -> str:
    """One row per key of a keyed checker (set, counter): its verdict, counts and lists
    (lists as their length and first elements); failing keys first."""
    keys = sorted(result["keys"].items(), key=lambda kv: (kv[1].get("valid") is True, str(kv[0])))
    fields = list(dict.fromkeys(f for _, r in keys for f in r if f != "valid"))
    head = "".join(f"<th>{esc(f)}</th>" for f in fields)
    rows = []
    for key, r in keys[:limit]:
        cells = []
        for f in fields:
            v = r.get(f, "")
            if isinstance(v, list):
                v = f"{len(v)}" + (f": {compact_json(v[:8])}" if v else "")
            elif isinstance(v, dict):
                v = compact_json(v, 200)
            cells.append(f"<td>{esc(v)}</td>")
        rows.append(f"<tr><td><code>{esc(key)}</code></td><td>{verdict_badge(verdict_word(r.get('valid')))}</td>"
                    + "".join(cells) + "</tr>")
    more = f'<p class="muted">… and {len(keys) - limit} more keys</p>' if len(keys) > limit else ""
    return f"<table><tr><th>key</th><th>verdict</th>{head}</tr>{''.join(rows)}</table>{more}"
