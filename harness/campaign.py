"""Campaigns: many tests from one YAML file, each with the verdict it is expected to reach.

A campaign file holds a base spec, a matrix of alternatives (every combination is one
run), explicit extra entries, `repeat`, and expectations ("raftkv with stale-reads must be
invalid"):

    name: smoke                      # default: the file's name
    base: {time_limit: 20, node_count: 3}
    matrix:                          # spec field -> list of alternatives
      workload: [register, list-append]
      nemesis: [partition, kill]     # two alternatives; [[partition, kill]] is one with both
    repeat: 1                        # runs per entry; run r uses seed + r
    expect: valid                    # the default expectation (valid unless said otherwise)
    at_least: all                    # the pass policy: all runs, or a fraction (0.8)
    expectations:                    # rules, first match wins; a scalar matches a list
      - {when: {bugs: stale-reads}, expect: invalid}   # member, a list matches it exactly
    entries:                         # explicit entries: spec fields, optionally
      - {workload: register, nemesis: [partition], bugs: [stale-reads],
         expect: invalid, repeat: 20, at_least: 0.8}  # expect / repeat / at_least

Each matrix combination and each explicit entry is an *entry*: `repeat` runs of one spec
under consecutive seeds. An entry passes when at least `at_least` of its runs (every one,
with `all`) reach the expected verdict; the report gives per entry the verdict counts, the
bug-finding figures (found in k of n runs, median and max seconds to the first blamed op,
the seeds that found it) and links to each run.

Each run is stored as usual (through run_test, by the executor: in this process, a local
process pool or Dask workers, see campaign_exec.py); the campaign's own directory,
<store>/campaigns/<name>/, gets state.json, campaign.html, ttd.png and junit.xml (one
testcase per entry). state.json records finished runs, so running an interrupted campaign
again skips them (a run that crashed is tried again); once every run has finished, running
the file again starts a new campaign.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import statistics
import sys
from dataclasses import dataclass
from typing import Any, Callable, TextIO

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.campaign_exec import Executor, SerialExecutor
from harness.report.campaign import write_campaign_html, write_junit
from harness.report.summary import verdict_word
from harness.spec import DEFAULTS, SpecError, resolve_spec

VERDICTS = ("valid", "invalid", "unknown")
_TOP_FIELDS = ("name", "base", "matrix", "repeat", "expect", "at_least", "expectations", "entries")
_PLURALS = {"targets": "target", "workloads": "workload", "nemeses": "nemesis", "seeds": "seed"}
_NAME = re.compile(r"[A-Za-z0-9._-]+")


class CampaignError(SpecError):
    """A malformed campaign file; the message names the file and the field, on one line."""


@dataclass
class CampaignRun:
    key: str        # stable across invocations of the same file: what resuming matches on
    label: str      # for people: the summary table
    spec: dict      # what run_test gets
    expect: str


@dataclass
class CampaignEntry:
    label: str                  # for people: the report's row, JUnit's testcase name
    expect: str
    at_least: str | float       # "all", or the fraction of runs that must reach `expect`
    runs: list[CampaignRun]


@dataclass
class Campaign:
    name: str
    path: str
    store: str
    entries: list[CampaignEntry]

    @property
    def runs(self) -> list[CampaignRun]:
        return [run for entry in self.entries for run in entry.runs]

    @property
    def dir(self) -> str:
        return os.path.join(self.store, "campaigns", self.name)


# ------------------------------------------------------------------ reading

def load_campaign(path: str, store: str | None = None) -> Campaign:
    """Parse and validate a campaign file (every run's spec included) without running it."""
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise CampaignError(f"{path}: a campaign is a mapping with fields {', '.join(_TOP_FIELDS)}")
    for key in data:
        if key not in _TOP_FIELDS:
            raise CampaignError(f"{path}: unknown field '{key}' (known: {', '.join(_TOP_FIELDS)})")
    name = data.get("name") or re.sub(r"[^A-Za-z0-9._-]", "-", os.path.splitext(os.path.basename(path))[0])
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CampaignError(f"{path}: field 'name' may hold only letters, digits, '.', '_' and '-', got {name!r}")
    base = _mapping(data.get("base"), path, "base")
    default_expect = _expect(data.get("expect", "valid"), path, "expect")
    repeat = _repeat(data.get("repeat", 1), path, "repeat")
    at_least = _at_least(data.get("at_least", "all"), path, "at_least")
    rules = _rules(data.get("expectations"), path)
    if "store" in base and store is None:
        store = base["store"]
    store = store or DEFAULTS["store"]
    if not isinstance(store, str):
        raise CampaignError(f"{path}: field 'base.store' must be a directory name, got {store!r}")

    combos: list[tuple[str, dict, str | None, int, Any]] = []  # where, fields, expect, repeat, at_least
    for i, fields in enumerate(_matrix(data.get("matrix"), path)):
        combos.append((f"matrix combination {i + 1}", fields, None, repeat, at_least))
    entries = data.get("entries") or []
    if not isinstance(entries, list):
        raise CampaignError(f"{path}: field 'entries' must be a list of runs")
    for i, entry in enumerate(entries):
        where = f"entries[{i}]"
        entry = dict(_mapping(entry, path, where))
        expect = _expect(entry.pop("expect"), path, f"{where}.expect") if "expect" in entry else None
        times = _repeat(entry.pop("repeat", repeat), path, f"{where}.repeat")
        policy = _at_least(entry.pop("at_least", at_least), path, f"{where}.at_least")
        combos.append((where, entry, expect, times, policy))
    if not combos:
        raise CampaignError(f"{path}: no runs: give a 'matrix' or 'entries'")

    entries: list[CampaignEntry] = []
    labels: dict[str, int] = {}
    keys: dict[str, int] = {}
    for where, fields, expect, times, policy in combos:
        if "store" in fields:
            raise CampaignError(f"{path}: {where}: field 'store' belongs in 'base' (one store per campaign)")
        spec = {**base, **fields, "store": store}
        checked = resolve_spec(spec, where=f"{path}: {where}")
        expect = expect or _match_rules(rules, checked) or default_expect
        runs = []
        for r in range(times):
            run_spec = dict(spec)
            if spec.get("seed") is not None:
                run_spec["seed"] = spec["seed"] + r
            if not spec.get("name"):
                run_spec["name"] = _test_name(name, checked)
            label = _unique(labels, _label(checked, run_spec.get("seed"), r if times > 1 else None))
            key = _key(run_spec, expect, r)
            keys[key] = keys.get(key, 0) + 1
            if keys[key] > 1:  # the same run listed twice is run twice
                key = f"{key}-{keys[key]}"
            runs.append(CampaignRun(key, label, run_spec, expect))
        label = runs[0].label if times == 1 else _unique(labels, _entry_label(checked, spec.get("seed"), times))
        entries.append(CampaignEntry(label, expect, policy, runs))
    return Campaign(name, path, store, entries)


def _unique(labels: dict[str, int], label: str) -> str:
    labels[label] = labels.get(label, 0) + 1
    return label if labels[label] == 1 else f"{label}#{labels[label]}"


def _read_yaml(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise CampaignError(f"{path}: no such campaign file") from None
    except UnicodeDecodeError as e:
        raise CampaignError(f"{path}: not a text file ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise CampaignError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise CampaignError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', None) or e})") from None


def _mapping(x: Any, path: str, field: str) -> dict:
    if x is None:
        return {}
    if not isinstance(x, dict):
        raise CampaignError(f"{path}: field '{field}' must be a mapping of spec fields, got {x!r}")
    return x


def _expect(x: Any, path: str, field: str) -> str:
    if x is True or x is False:  # YAML reads a bare `true` as a boolean
        x = verdict_word(x)
    if x not in VERDICTS:
        raise CampaignError(f"{path}: field '{field}' must be one of {', '.join(VERDICTS)}, got {x!r}")
    return x


def _repeat(x: Any, path: str, field: str) -> int:
    if not isinstance(x, int) or isinstance(x, bool) or x < 1:
        raise CampaignError(f"{path}: field '{field}' must be a whole number of at least 1, got {x!r}")
    return x


def _at_least(x: Any, path: str, field: str) -> str | float:
    if x == "all":
        return "all"
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x <= 1:
        raise CampaignError(f"{path}: field '{field}' must be 'all' or a fraction of the runs "
                            f"above 0 and at most 1 (0.8: four in five), got {x!r}")
    return float(x)


def _matrix(matrix: Any, path: str) -> list[dict]:
    if matrix is None:
        return []
    if not isinstance(matrix, dict) or not matrix:
        raise CampaignError(f"{path}: field 'matrix' must map spec fields to lists of alternatives")
    for axis, alternatives in matrix.items():
        if axis in _PLURALS:
            raise CampaignError(f"{path}: field 'matrix.{axis}': use the spec field name '{_PLURALS[axis]}'")
        if not isinstance(alternatives, list) or not alternatives:
            raise CampaignError(f"{path}: field 'matrix.{axis}' must be a non-empty list of alternatives, "
                                f"got {alternatives!r}")
    axes = list(matrix)
    return [dict(zip(axes, combo)) for combo in itertools.product(*(matrix[a] for a in axes))]


def _rules(rules: Any, path: str) -> list[tuple[dict, str]]:
    if rules is None:
        return []
    if not isinstance(rules, list):
        raise CampaignError(f"{path}: field 'expectations' must be a list of {{when: ..., expect: ...}}")
    out = []
    for i, rule in enumerate(rules):
        where = f"expectations[{i}]"
        if not isinstance(rule, dict) or set(rule) != {"when", "expect"}:
            raise CampaignError(f"{path}: field '{where}' must have exactly 'when' and 'expect', got {rule!r}")
        when = rule["when"]
        if not isinstance(when, dict) or not when:
            raise CampaignError(f"{path}: field '{where}.when' must map spec fields to values, got {when!r}")
        for field in when:
            if field not in DEFAULTS:
                raise CampaignError(f"{path}: field '{where}.when.{field}' is not a spec field")
        out.append((when, _expect(rule["expect"], path, f"{where}.expect")))
    return out


def _match_rules(rules: list[tuple[dict, str]], spec: dict) -> str | None:
    for when, expect in rules:
        if all(_matches(spec.get(field), wanted) for field, wanted in when.items()):
            return expect
    return None


def _matches(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, str) and "," in wanted and isinstance(value, list):
        wanted = [w.strip() for w in wanted.split(",")]
    if isinstance(value, list):
        return sorted(map(str, value)) == sorted(map(str, wanted)) if isinstance(wanted, list) else wanted in value
    return value == wanted


def _words(value: Any, joiner: str = "_") -> str:
    return joiner.join(map(str, value)) if isinstance(value, list) else str(value)


def _test_name(campaign: str, spec: dict) -> str:
    parts = [campaign, spec["target"], spec["workload"], _words(spec["nemesis"]) or "no-faults"]
    if spec["bugs"]:
        parts.append(_words(spec["bugs"]))
    return re.sub(r"[^A-Za-z0-9._-]", "-", "-".join(parts))


def _label(spec: dict, seed: Any, repeat: int | None) -> str:
    label = f"{spec['target']} {spec['workload']} nemesis={_words(spec['nemesis'], '+') or 'none'}"
    if spec["bugs"]:
        label += f" bugs={_words(spec['bugs'], '+')}"
    if seed is not None:
        label += f" seed={seed}"
    if repeat is not None and seed is None:
        label += f" run={repeat + 1}"
    return label


def _entry_label(spec: dict, seed: Any, times: int) -> str:
    label = _label(spec, None, None)
    return label + (f" seeds={seed}..{seed + times - 1}" if seed is not None else f" x{times}")


def _key(spec: dict, expect: str, repeat: int) -> str:
    what = {k: v for k, v in spec.items() if k != "store"}
    text = json.dumps([what, expect, repeat], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------ running

def run_campaign(path: str, *, store: str | None = None, runner: Callable[[dict], Any] | None = None,
                 stream: TextIO | None = None, executor: Executor | None = None) -> int:
    """Run (or resume) the campaign in `path`; return the exit code: 0 when every entry
    met its pass policy, 1 when one did not, 2 when the campaign was stopped (by a signal,
    or runs are still missing) before every entry was decided.

    `executor` runs the runs (default: one at a time in this process, see campaign_exec);
    `runner(spec) -> outcome` (with .valid, .run_dir, .results) replaces run_test in that
    default, for fast tests. Raises CampaignError / SpecError on a malformed file before
    anything runs; a KeyboardInterrupt leaves the finished runs recorded.
    """
    campaign = load_campaign(path, store)
    console = Console(file=stream or sys.stdout, highlight=False)
    if not console.is_terminal:
        console.width = 200  # a log file has no width; keep the summary's paths on one line
    executor = executor or SerialExecutor(runner)
    os.makedirs(campaign.dir, exist_ok=True)
    state = _load_state(campaign)
    _save_state(campaign, state)
    done = state["finished"]
    todo = [r for r in campaign.runs if done.get(r.key, {}).get("verdict") not in VERDICTS]
    if len(todo) < len(campaign.runs):
        console.print(f"Resuming campaign {campaign.name}: {len(campaign.runs) - len(todo)} of "
                      f"{len(campaign.runs)} runs already done (state in {campaign.dir}).")
    else:
        console.print(f"Campaign {campaign.name}: {len(campaign.entries)} entries, {len(campaign.runs)} runs "
                      f"({executor.describe()}); results in {campaign.dir}")
    counter = itertools.count(1)

    def finished(item: CampaignRun, record: dict) -> None:
        record["label"] = item.label
        done[item.key] = record
        _save_state(campaign, state)
        mark = "[green]as expected[/green]" if record["passed"] else "[yellow]not as expected[/yellow]"
        where = f" on {record['host']}" if record.get("host") else ""
        console.print(f"[bold]\\[{next(counter)}/{len(todo)}][/bold] {escape(item.label)}: {record['verdict']} "
                      f"(expect {item.expect}) {mark} in {record['seconds']:.1f}s{escape(where)}"
                      + (f": {escape(record['error'])}" if record.get("error") else ""))

    try:
        if not executor.run(todo, finished):
            console.print("Stopped by a signal; run the same campaign again to resume.")
        else:
            # Complete only without crashed runs: running the file again retries those.
            state["complete"] = all(done.get(r.key, {}).get("verdict") in VERDICTS for r in campaign.runs)
            _save_state(campaign, state)
    finally:
        summaries = [(entry, summarize_entry(entry, [done.get(r.key) for r in entry.runs]))
                     for entry in campaign.entries]
        html = write_campaign_html(campaign.dir, campaign.name, summaries)
        junit = write_junit(campaign.dir, campaign.name, summaries)
        _print_summary(console, campaign, summaries)
        console.print(f"Campaign report: {html}\nJUnit XML: {junit}")
    statuses = [summary["status"] for _, summary in summaries]
    if "failed" in statuses:
        return 1
    return 2 if "incomplete" in statuses else 0


def summarize_entry(entry: CampaignEntry, records: list[dict | None]) -> dict:
    """An entry's verdict under its pass policy, with the bug-finding figures.

    status: passed (enough runs reached the expected verdict), failed (too few can), or
    incomplete (runs are missing and could still decide either way). found: runs judged
    invalid; ttd_median / ttd_max: seconds from the start of a test to the invocation of
    the first op the checkers blame, over the invalid runs that name one.
    """
    runs = len(entry.runs)
    finished = [r for r in records if r is not None]
    counts = {v: sum(1 for r in finished if r["verdict"] == v) for v in (*VERDICTS, "error")}
    counts["not run"] = runs - len(finished)
    matched = sum(1 for r in finished if r["verdict"] == entry.expect)
    needed = runs if entry.at_least == "all" else math.ceil(entry.at_least * runs - 1e-9)
    status = ("passed" if matched >= needed else
              "failed" if matched + counts["not run"] < needed else "incomplete")
    ttd = [r["detection"]["seconds"] for r in finished
           if r["verdict"] == "invalid" and isinstance(r.get("detection"), dict)]
    return {
        "status": status, "runs": runs, "counts": counts, "matched": matched, "needed": needed,
        "found": counts["invalid"],
        "found_seeds": [r.get("seed") for r in finished if r["verdict"] == "invalid"],
        "anomalies": sorted({a for r in finished for a in r.get("anomalies") or ()}),
        "ttd": ttd,
        "ttd_median": statistics.median(ttd) if ttd else None,
        "ttd_max": max(ttd) if ttd else None,
        "records": records,
    }


def policy_text(entry: CampaignEntry) -> str:
    """"invalid in all runs", "invalid in at least 80% of 10 runs"."""
    if entry.at_least == "all":
        return f"{entry.expect} in all {len(entry.runs)} runs" if len(entry.runs) > 1 else entry.expect
    return f"{entry.expect} in at least {entry.at_least:.0%} of {len(entry.runs)} runs"


def _load_state(campaign: Campaign) -> dict:
    path = os.path.join(campaign.dir, "state.json")
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        state = None
    except (OSError, ValueError) as e:
        raise CampaignError(f"{path}: unreadable campaign state ({e}); delete it to start the campaign afresh") from None
    if not isinstance(state, dict) or state.get("complete") or not isinstance(state.get("finished"), dict):
        state = {"campaign": os.path.abspath(campaign.path), "complete": False, "finished": {}}
    return state


def _save_state(campaign: Campaign, state: dict) -> None:
    path = os.path.join(campaign.dir, "state.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1, default=str)
    os.replace(path + ".tmp", path)  # a campaign killed mid-write keeps the old state


def _print_summary(console: Console, campaign: Campaign, summaries: list) -> None:
    table = Table(title=f"campaign {campaign.name}", title_justify="left")
    for column in ("entry", "expected", "valid", "invalid", "unknown", "error", "found", "ttd s (med/max)", ""):
        table.add_column(column, overflow="fold")
    for entry, summary in summaries:
        counts = summary["counts"]
        ttd = (f"{summary['ttd_median']:.1f} / {summary['ttd_max']:.1f}"
               if summary["ttd_median"] is not None else "")
        mark = {"passed": "[green]ok[/green]", "failed": "[red]FAIL[/red]",
                "incomplete": "[yellow]not done[/yellow]"}[summary["status"]]
        table.add_row(escape(entry.label), escape(policy_text(entry)),
                      *(str(counts[v]) for v in ("valid", "invalid", "unknown", "error")),
                      f"{summary['found']} of {summary['runs']}", ttd, mark)
    console.print(table)
    passed = sum(1 for _, s in summaries if s["status"] == "passed")
    console.print(f"{passed} of {len(summaries)} entries as expected")
