"""The few HTML pieces every tectonic page shares: escaping, the style sheet, the frame.

Pages are self-contained (inline CSS, no fonts or scripts from the network) so a results
directory can be copied anywhere and read offline.
"""
from __future__ import annotations

import base64
import html
import json
from typing import Any

CSS = """
:root { --ok:#1a7f37; --bad:#cf222e; --unk:#9a6700; --fg:#1f2328; --muted:#59636e;
        --line:#d1d9e0; --bg2:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: var(--fg); margin: 0 auto; max-width: 1200px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px;
     border-bottom: 1px solid var(--line); padding-bottom: 4px; } h3 { font-size: 15px; margin: 16px 0 6px; }
a { color: #0969da; } code, pre { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: var(--bg2); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px;
      overflow: auto; max-height: 480px; white-space: pre-wrap; word-break: break-word; }
table { border-collapse: collapse; margin: 6px 0; } th, td { border-bottom: 1px solid var(--line);
        padding: 4px 10px; text-align: left; vertical-align: top; } th { background: var(--bg2); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
.verdict { display: inline-block; font-weight: 700; border-radius: 6px; padding: 2px 10px; color: #fff; }
.verdict.valid { background: var(--ok); } .verdict.invalid { background: var(--bad); }
.verdict.unknown { background: var(--unk); }
.banner { border-radius: 8px; padding: 12px 16px; margin: 8px 0 16px; border: 1px solid var(--line); }
.banner.valid { background: #dafbe1; } .banner.invalid { background: #ffebe9; } .banner.unknown { background: #fff8c5; }
.banner .verdict { font-size: 18px; margin-right: 10px; }
.plot { max-width: 100%; border: 1px solid var(--line); border-radius: 6px; margin: 6px 0; }
details > summary { cursor: pointer; color: var(--muted); }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; }
input[type=search], select { font: inherit; padding: 4px 8px; border: 1px solid var(--line); border-radius: 6px; }
"""


def data_uri(path: str, mime: str) -> str:
    """The file as a data: URI, so the page shows it with no file beside it."""
    with open(path, "rb") as f:
        return f"data:{mime};base64," + base64.b64encode(f.read()).decode("ascii")


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def verdict_badge(word: str) -> str:
    return f'<span class="verdict {esc(word)}">{esc(word.upper())}</span>'


def compact_json(x: Any, limit: int | None = None) -> str:
    """JSON of x for display; cut at `limit` characters with a note of what was cut."""
    text = json.dumps(x, default=repr, ensure_ascii=False)
    if limit is not None and len(text) > limit:
        return text[:limit] + f"… ({len(text) - limit} more characters)"
    return text


def pretty_json(x: Any, limit: int = 20000) -> str:
    text = json.dumps(x, default=repr, ensure_ascii=False, indent=2)
    if len(text) > limit:
        return text[:limit] + f"\n… ({len(text) - limit} more characters in the file)"
    return text


def script_json(x: Any) -> str:
    """JSON safe to place inside a <script> element, and still JSON.

    Outside strings JSON has no `<`, `>` or `&`, so escaping every one as \\u00XX keeps the
    text parseable by JSON.parse and leaves the HTML parser nothing to act on: no `</script>`
    ends the element early and no `<!--` switches it into its escaped state (`<\\!--` would
    do that job but is not JSON, which broke the page's data).
    """
    text = json.dumps(x, separators=(",", ":"), default=repr, ensure_ascii=False)
    return text.translate(_SCRIPT_UNSAFE)


_SCRIPT_UNSAFE = {ord(c): f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"}


def page(title: str, body: str, head_extra: str = "") -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style>{head_extra}</head>"
            f"<body>{body}</body></html>\n")
