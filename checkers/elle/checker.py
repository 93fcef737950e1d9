"""Elle's checker: from a history of transactions to a verdict per consistency model.

1. Infer the dependency graph and the non-cycle anomalies (list-append or rw-register).
2. Add process or real-time order when a requested model needs it.
3. Split the graph into strongly connected components; search each for cycles by kind,
   within a time budget.
4. Judge: anomalies the requested models proscribe make the history invalid; only
   `empty-transaction-graph` / `cycle-search-timeout` make it unknown. `not` names the
   weakest models the anomalies rule out, `also_not` the stronger ones.
"""
from __future__ import annotations

import os
import time
from typing import Any, Iterable

from core.gc_pause import paused_gc
from core.history import HistoryError, load_history, validate
from core.history.load import sniff_format

from ..result import UNKNOWN
from . import columnar, models
from .explain import CycleWriter, write_files
from .graph import PROCESS, REALTIME, Components, process_edges
from .list_append import DuplicateAppends, ListAppend, jsonable
from .malformed import SHAPE_ERRORS, first_malformed
from .rw_register import DuplicateWrites, RWRegister
from .search import ComponentSearch, Shared
from .txns import TxnHistory

WORKLOADS = ("list-append", "rw-register")
ENGINES = ("auto", "columnar", "reference")
DEFAULT_MODELS = ("strict-serializable",)
# Seconds one component's cycle search may take before falling back to "some cycle".
COMPONENT_BUDGET = 2.0
# How many explained cycles per anomaly type go into the result (the files hold all).
EXPLANATIONS_PER_TYPE = 10
# How many cycles per anomaly type are drawn (DOT, SVG): a huge failing history has
# thousands, each drawing costs a Graphviz run, and nobody looks past the first few (the
# text file tells every one).
DRAWINGS_PER_TYPE = 10

_CYCLE_BASES = ("G0", "G1c", "G-single", "G-single-item", "G-nonadjacent",
                "G-nonadjacent-item", "G2-item", "G2")
_REALTIME_TYPES = frozenset(b + "-realtime" for b in _CYCLE_BASES)
_PROCESS_TYPES = frozenset(b + "-process" for b in _CYCLE_BASES)
_RW_OPTIONS = {"wfr_keys", "sequential_keys", "linearizable_keys", "transaction_order"}


def check(history: list[dict], workload: str, *,
          consistency_models: Iterable[str] | None = DEFAULT_MODELS,
          anomalies: Iterable[str] = (), time_limit: float = 60.0,
          component_budget: float = COMPONENT_BUDGET, out_dir: str | None = None,
          engine: str = "auto", **rw_register_opts) -> dict[str, Any]:
    """Checks a history; see the module doc. Raises ValueError on malformed input.

    `engine`: "reference" (TxnHistory and ListAppend / RWRegister, a dict per op),
    "columnar" (list-append only: columns and numpy joins, see columnar.py; a history it
    cannot hold goes to the reference) or "auto" (columnar for list-append). Both give
    the same result; `stats.engine` says which one ran."""
    def analyse():
        return _blaming_the_shape(lambda: _analyse_in_memory(history, workload, engine, rw_register_opts),
                                  lambda: history, workload)
    return _run(analyse, workload, consistency_models, anomalies, time_limit,
                component_budget, out_dir, engine, rw_register_opts)


def _blaming_the_shape(analyse, history, workload: str):
    """analyse(); where it trips over a value of the wrong kind, the HistoryError naming
    the first malformed transaction of history() if there is one (malformed.py)."""
    try:
        return analyse()
    except SHAPE_ERRORS:
        problem = first_malformed(history(), workload)
        if problem is None:
            raise  # the history is well formed: a bug of ours, reported as one
        raise HistoryError(problem) from None


def _analyse_in_memory(history: list[dict], workload: str, engine: str, rw_register_opts: dict):
    """(engine name, analysis) of an in-memory history: columnar for list-append unless
    the reference is asked for or the columns cannot hold it."""
    if workload == "list-append" and engine != "reference":
        try:
            return "columnar", columnar.analyse_history(history)
        except columnar.Fallback:
            pass
    return "reference", _reference(TxnHistory(history), workload, rw_register_opts)


def check_path(path: str, workload: str, *,
               consistency_models: Iterable[str] | None = DEFAULT_MODELS,
               anomalies: Iterable[str] = (), time_limit: float = 60.0,
               component_budget: float = COMPONENT_BUDGET, out_dir: str | None = None,
               engine: str = "auto", **rw_register_opts) -> dict[str, Any]:
    """`check` of a history file (any format `core.history.load_history` reads). A
    list-append history.jsonl is streamed into columns and never held as dicts: a
    million transactions check in a few hundred megabytes. Raises HistoryError on an
    unreadable file, ValueError as `check` does."""
    def analysed():
        if workload == "list-append" and engine != "reference" and _is_jsonl(path):
            try:
                return "columnar", columnar.analyse_file(path)
            except columnar.Fallback:
                pass
        history = load_history(path)
        validate(history)  # a file's pairing errors are the caller's HistoryError, as elsewhere
        return _analyse_in_memory(history, workload, engine, rw_register_opts)

    def analyse():
        return _blaming_the_shape(analysed, lambda: load_history(path), workload)
    return _run(analyse, workload, consistency_models, anomalies, time_limit,
                component_budget, out_dir, engine, rw_register_opts)


def _is_jsonl(path: str) -> bool:
    return os.path.isfile(path) and sniff_format(path) == "jsonl"


def _reference(txns: TxnHistory, workload: str, rw_register_opts: dict):
    if workload == "list-append":
        return ListAppend(txns)
    return RWRegister(txns, **rw_register_opts)


def _run(analyse, workload, consistency_models, anomalies, time_limit, component_budget,
         out_dir, engine, rw_register_opts) -> dict[str, Any]:
    # The analysis allocates millions of small tuples and lists that are never cyclic; the
    # cyclic garbage collector would rescan the whole history each time they pile up
    # (measured: it doubled the time of a 100,000-transaction check).
    with paused_gc():
        return _check(analyse, workload, consistency_models, anomalies, time_limit,
                      component_budget, out_dir, engine, rw_register_opts)


def _check(analyse, workload, consistency_models, anomalies, time_limit, component_budget,
           out_dir, engine, rw_register_opts) -> dict[str, Any]:
    started = time.monotonic()
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; expected one of {', '.join(WORKLOADS)}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    if engine == "columnar" and workload != "list-append":
        raise ValueError("the columnar engine checks list-append histories only")
    unknown = set(rw_register_opts) - _RW_OPTIONS
    if unknown or (rw_register_opts and workload != "rw-register"):
        raise ValueError(f"options {sorted(rw_register_opts)} are not for {workload} "
                         f"(rw-register takes {sorted(_RW_OPTIONS)})")
    wanted_models = [models.canonical(m) for m in (consistency_models or ())]
    prohibited = models.anomalies_implying(anomalies) | models.prohibited_by(wanted_models)
    reportable = prohibited | models.UNKNOWN_ANOMALIES

    try:
        used, analysis = analyse()
    except (DuplicateAppends, DuplicateWrites) as e:
        return {"valid": UNKNOWN, "error": str(e), "anomaly-types": [],
                "anomalies": {}, "not": [], "also_not": [], "explanations": {}}
    txns = analysis.txns

    # Elle adds real-time order when a reportable anomaly needs it, else process order
    # when one needs that (real-time order contains process order: a process is serial).
    realtime = bool(reportable & _REALTIME_TYPES)
    process = not realtime and bool(reportable & _PROCESS_TYPES)
    if process:
        process_edges(txns, analysis.graph)
    components = Components(analysis.graph, txns.events if realtime else None)
    found: dict[str, list] = dict(analysis.anomalies)
    if not components.has_edges:
        found["empty-transaction-graph"] = [{"type": "empty-transaction-graph"}]
    cycles = _search(components, analysis, realtime, process, found,
                     deadline=started + time_limit, component_budget=component_budget)

    writer = CycleWriter(analysis)
    texts: dict[str, list[str]] = {}
    dots: dict[str, list[str]] = {}
    for kind, of_kind in cycles.items():
        found[kind] = []
        for number, cycle in enumerate(of_kind, start=1):
            steps = writer.steps(cycle)
            found[kind].append({"type": kind, "cycle": [txns.index[n] for n in cycle.nodes],
                                "steps": [{k: jsonable(v) for k, v in s.items() if k != "mop"}
                                          for s in steps]})
            if kind in reportable and (out_dir is not None or number <= EXPLANATIONS_PER_TYPE):
                texts.setdefault(kind, []).append(writer.text(cycle, steps, number))
                if out_dir is not None and number <= DRAWINGS_PER_TYPE:
                    dots.setdefault(kind, []).append(writer.dot(cycle, steps, number))

    result = _verdict(found, prohibited, reportable)
    result["explanations"] = {k: v[:EXPLANATIONS_PER_TYPE] for k, v in texts.items()}
    result["stats"] = {"transactions": len(txns), "edges": len(analysis.graph),
                       "cyclic-components": len(components),
                       "seconds": round(time.monotonic() - started, 3), "engine": used}
    if out_dir is not None:
        others = {k: v for k, v in result["anomalies"].items() if k not in texts}
        write_files(out_dir, texts, dots, others)
    return result


def _search(components: Components, analysis, realtime: bool, process: bool, found: dict,
            deadline: float, component_budget: float) -> dict[str, list]:
    """Cycles by type, from every cyclic component; cycle-exists and timeout anomalies go
    into `found`. Each component gets `component_budget` seconds, all of them together
    what is left until `deadline`."""
    txns = analysis.txns
    relation = REALTIME if realtime else PROCESS

    def order(a: int, b: int) -> int:
        return relation if txns.precedes(a, b, realtime) else 0

    cyclic = components.cyclic()
    shared = Shared(cyclic, analysis.explain_order)
    cycles: dict[str, list] = {}
    for c in range(len(cyclic)):
        search = ComponentSearch(cyclic, c, shared, txns.index,
                                 order if realtime or process else None)
        result = search.search(min(deadline, time.monotonic() + component_budget))
        for case in result.exists:
            found.setdefault(case["type"], []).append(case)
        if result.timeout:
            found.setdefault("cycle-search-timeout", []).append(result.timeout)
        for cycle in result.cycles:
            cycles.setdefault(cycle.type, []).append(cycle)
    return cycles


def _verdict(found: dict[str, list], prohibited: frozenset | set, reportable) -> dict[str, Any]:
    """Elle's result map: only reportable anomalies are listed, and a cycle-exists
    fallback is dropped when a specific anomaly already rules its model out."""
    shown = {k: v for k, v in found.items() if k in reportable}
    specific = [k for k in shown if not k.endswith("-cycle-exists")]
    ruled_out = models.impossible_models(specific)
    shown = {k: v for k, v in shown.items()
             if not (k.endswith("-cycle-exists") and v[0]["not"] in ruled_out)}
    if not shown:
        return {"valid": True, "anomaly-types": [], "anomalies": {}, "not": [], "also_not": []}
    weakest, stronger = models.boundary(found)
    valid = False if any(k in prohibited for k in shown) else UNKNOWN
    blamed = sorted({i for k, cases in shown.items() if k in prohibited
                     for case in cases for i in _op_indices(case)})
    return {"valid": valid, "anomaly-types": sorted(shown), "anomalies": shown,
            "not": weakest, "also_not": stronger, "blamed": blamed}


def _op_indices(case: Any):
    """The history indices an anomaly names: a cycle's transactions, and every op it
    quotes (a dict with an integer `index`), however deep (checkers/detection.py)."""
    if isinstance(case, dict):
        if isinstance(case.get("index"), int):
            yield case["index"]
        for key, value in case.items():
            if key == "cycle" and isinstance(value, list):
                yield from (i for i in value if isinstance(i, int))
            elif isinstance(value, (dict, list)):
                yield from _op_indices(value)
    elif isinstance(case, list):
        for item in case:
            yield from _op_indices(item)


def check_elle(history: list[dict], workload: str, opts: dict,
               engine: str = "auto") -> dict[str, Any]:
    """Like `check`, with Elle-style options as in the conformance cases:
    `consistency-models` (absent: strict-serializable; null: none), `anomalies`,
    `linearizable-keys?`, `sequential-keys?`, `wfr-keys?`, `transaction-order`,
    `cycle-search-timeout` (milliseconds), `directory`."""
    opts = dict(opts or {})
    kwargs: dict[str, Any] = {}
    if "consistency-models" in opts:
        kwargs["consistency_models"] = opts.pop("consistency-models") or ()
    kwargs["anomalies"] = opts.pop("anomalies", None) or ()
    if "cycle-search-timeout" in opts:
        kwargs["component_budget"] = opts.pop("cycle-search-timeout") / 1000.0
    if "directory" in opts:
        kwargs["out_dir"] = opts.pop("directory")
    for elle_name, name in (("linearizable-keys?", "linearizable_keys"),
                            ("sequential-keys?", "sequential_keys"), ("wfr-keys?", "wfr_keys"),
                            ("transaction-order", "transaction_order")):
        if elle_name in opts:
            value = opts.pop(elle_name)
            if value:
                kwargs[name] = value
    if opts:
        raise ValueError(f"unknown Elle options: {', '.join(sorted(opts))}")
    return check(history, workload, engine=engine, **kwargs)


class ElleChecker:
    """The Elle checker for the list-append and rw-register workloads.

    `consistency_models` are the models the history should satisfy (friendly names such as
    "serializable" or Adya's "PL-3"); `anomalies` adds specific anomalies to look for;
    `time_limit` bounds the whole cycle search in seconds. rw-register also takes
    `wfr_keys`, `sequential_keys`, `linearizable_keys` (bools) and `transaction_order`
    (completion index -> commit position). `check` takes `out_dir` in opts for artefacts.
    """

    name = "elle"

    def __init__(self, workload: str, *, consistency_models=DEFAULT_MODELS, anomalies=(),
                 time_limit: float = 60.0, **rw_register_opts):
        if workload not in WORKLOADS:
            raise ValueError(f"unknown workload {workload!r}; expected one of {', '.join(WORKLOADS)}")
        unknown = set(rw_register_opts) - _RW_OPTIONS
        if unknown:
            raise TypeError(f"unknown ElleChecker options: {', '.join(sorted(unknown))}")
        if rw_register_opts and workload != "rw-register":
            raise ValueError(f"{', '.join(sorted(rw_register_opts))} only apply to rw-register")
        for m in consistency_models or ():
            models.canonical(m)
        self.workload = workload
        self.consistency_models = tuple(consistency_models or ())
        self.anomalies = tuple(anomalies)
        self.time_limit = time_limit
        self.rw_register_opts = rw_register_opts

    def check(self, history: list[dict], opts: dict) -> dict[str, Any]:
        opts = opts or {}
        return check(history, self.workload, consistency_models=self.consistency_models,
                     anomalies=self.anomalies, time_limit=self.time_limit,
                     out_dir=opts.get("out_dir"), **self.rw_register_opts)
