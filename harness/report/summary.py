"""What a results.json says in a few words: the verdict and which anomalies were found.

Shared by the report, the results browser, campaigns and the pytest plugin, so a failure
reads the same everywhere. Checker results may nest (a composed result has `checkers`).
"""
from __future__ import annotations

from typing import Any

from checkers.result import UNKNOWN

VERDICT_WORDS = {True: "valid", False: "invalid", UNKNOWN: "unknown"}


def verdict_word(valid: Any) -> str:
    """'valid', 'invalid' or 'unknown' for a result's `valid`."""
    if valid is True or valid is False:
        return VERDICT_WORDS[valid]
    return "unknown"


def failing_checkers(results: dict, prefix: str = "") -> list[tuple[str, dict]]:
    """(dotted name, result) of every checker whose verdict is not valid, innermost first
    for composed results so the summary names what actually failed."""
    found: list[tuple[str, dict]] = []
    for name, result in (results.get("checkers") or {}).items():
        if not isinstance(result, dict):
            continue
        full = f"{prefix}{name}"
        nested = failing_checkers(result, full + ".") if isinstance(result.get("checkers"), dict) else []
        if nested:
            found.extend(nested)
        elif result.get("valid") is not True:
            found.append((full, result))
    return found


def anomaly_types(results: dict | None) -> list[str]:
    """Short names of what is wrong: Elle's anomaly types, 'nonlinearizable', or the name
    of any other checker that did not pass."""
    if not results:
        return []
    names: list[str] = []
    for name, result in failing_checkers(results):
        found = result.get("anomaly-types") or result.get("anomaly_types")
        if isinstance(found, list) and found:
            names.extend(str(a) for a in found)
        elif result.get("valid") is False:
            names.append("nonlinearizable" if "failures" in result and "linear" in name else name)
        else:
            names.append(f"{name}?")
    return list(dict.fromkeys(names))


def describe_failures(results: dict | None, max_lines: int = 8, width: int = 300) -> str:
    """Which checkers did not pass and why: a line per checker, then the first
    `max_lines` lines of its explanation (indented, each cut to `width` characters)."""
    if results is None:
        return "no results.json: the run did not reach its checkers"
    lines = []
    for name, result in failing_checkers(results):
        head = f"{name}: {verdict_word(result.get('valid'))}"
        found = result.get("anomaly-types") or []
        if found:
            head += f" ({', '.join(map(str, found))})"
        failures = result.get("failures")
        if isinstance(failures, dict) and failures:
            keys = list(failures)
            head += f" on key(s) {', '.join(map(str, keys[:5]))}" + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
        why = _explanation(result)
        if not why:
            lines.append(head)
            continue
        text = why.strip().splitlines()
        if len(text) == 1:
            lines.append(_cut(f"{head}: {text[0]}", width))
            continue
        lines.append(head + ":")
        lines.extend(_cut("  " + line, width) for line in text[:max_lines])
        if len(text) > max_lines:
            lines.append(f"  … ({len(text) - max_lines} more lines in the report)")
    if not lines and results.get("valid") is not True:
        lines.append(str(results.get("error") or "the verdict is unknown"))
    return "\n".join(lines) or "every checker passed"


def _cut(line: str, width: int) -> str:
    return line if len(line) <= width else line[:width - 1] + "…"


def _explanation(result: dict) -> str:
    for field in ("explanation", "explanations", "error", "message"):
        text = result.get(field)
        if isinstance(text, dict):
            text = next(iter(text.values()), None)
        if isinstance(text, list):
            text = text[0] if text else None
        if isinstance(text, str) and text.strip():
            return text
    return _notable_fields(result)


def _notable_fields(result: dict) -> str:
    """For a checker without prose: its non-empty lists (never_succeeded, lost, ...) and
    the keys whose own result failed."""
    notes = []
    for field, value in result.items():
        if isinstance(value, list) and value and field not in ("anomaly-types", "not", "also_not"):
            shown = ", ".join(map(str, value[:5])) + (f" (+{len(value) - 5} more)" if len(value) > 5 else "")
            notes.append(f"{field}: {shown}")
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            bad = [str(k) for k, v in value.items() if "valid" in v and v["valid"] is not True]
            if bad:
                notes.append(f"{field} not valid: {', '.join(bad[:5])}" + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""))
    return "; ".join(notes)
