"""The walk in C (checkers/linearizable/_walk.c) against search.py's own.

The C walk decides valid searches and hands every other back to be walked again in
Python (which explains). So on every history the outcome must be the Python walk's:
the same verdict and the same number of configurations, also when the walk pauses
every few configurations (the driver interleaves keys there), when the budget runs
out, and when its sets span several words.
"""
import random

import pytest

from checkers.linearizable import LinearizableChecker, make_model, search as search_module
from checkers.linearizable import calls as calls_module
from checkers.linearizable.calls import prepare
from checkers.linearizable.search import Budget, search
from testkit.register_history import register_history

from .test_linearizable_prepare import decorate
from .test_linearizable_properties import MODEL_CASES, random_history


# Without the build (test_the_compiled_*_is_built says so) these have nothing to compare.
needs_compiled = pytest.mark.skipif(search_module._walk is None or calls_module._prepare is None,
                                    reason="the compiled loops are not built: run ./setup.sh")


def outcomes(calls, model, budget=Budget()):
    """The C walk's outcome (on prepare's Calls, it reads their packed rows; on a list,
    the Call tuples: the two must agree) and the Python walk's."""
    compiled = search(calls, model, budget)
    if not isinstance(calls, list):
        assert_same(search(list(calls), model, budget), compiled, "rows against tuples")
    reference = search(calls, model, budget, compiled=False)
    return compiled, reference


def assert_same(compiled, reference, what):
    assert (compiled.valid, compiled.configurations, compiled.reason, compiled.stuck_at, compiled.path,
            compiled.finals) == (reference.valid, reference.configurations, reference.reason,
                                 reference.stuck_at, reference.path, reference.finals), what


def test_the_compiled_walk_is_built():
    assert search_module._walk is not None, "checkers/linearizable/_walk.c is not built: run ./setup.sh"


@pytest.mark.parametrize("model_name,options", MODEL_CASES, ids=[f"{m}-{o}" for m, o in MODEL_CASES])
def test_random_histories_walk_as_the_reference(model_name, options, monkeypatch):
    monkeypatch.setattr(search_module, "CHECK_EVERY", 4)   # pause and resume often
    model = make_model(model_name, options.get("initial"), options.get("nil_read", "unknown"))
    verdicts = set()
    for seed in range(200):
        rng = random.Random(seed)
        history = random_history(model_name, rng, rng.randrange(2, 14))
        if model_name == "register":
            history = [op for op in history if op["f"] != "cas"]
        if rng.random() < 0.5:   # with lone completions: calls whose invocation is unknown
            history = decorate(history, rng)
        prepared = prepare(history, model, fail_cas=rng.choice(["ignored", "observed"]))
        for key, calls in prepared.keys.items():
            compiled, reference = outcomes(calls, model)
            assert_same(compiled, reference, f"seed {seed} key {key}")
            verdicts.add(compiled.valid)
    assert verdicts == {True, False}


@needs_compiled
@pytest.mark.parametrize("seed", range(6))
def test_long_register_histories_with_timeouts_walk_as_the_reference(seed, monkeypatch):
    monkeypatch.setattr(search_module, "CHECK_EVERY", 64)
    model = make_model("cas-register", 0)
    rng = random.Random(seed)
    history = register_history(rng.randrange(200, 800), concurrency=rng.randrange(3, 20), keys=3, seed=seed,
                               timeout_rate=rng.choice([0.0, 0.02, 0.1]), stale_reads=rng.choice([0.0, 0.05]))
    prepared = prepare(history, model, independent=True, fail_cas="observed")
    assert not any(isinstance(calls, list) for calls in prepared.keys.values()), "the C loop prepared it"
    for key, calls in prepared.keys.items():
        assert_same(*outcomes(calls, model), f"seed {seed} key {key}")


def test_a_spent_budget_stops_both_walks_at_the_same_count(monkeypatch):
    monkeypatch.setattr(search_module, "CHECK_EVERY", 16)
    model = make_model("cas-register", 0)
    history = register_history(400, concurrency=15, seed=3, timeout_rate=0.15)
    calls = prepare(history, model).keys["all"]
    compiled, reference = outcomes(calls, model, Budget(max_entries=48))
    assert compiled.valid == "unknown" and compiled.configurations == 48
    assert_same(compiled, reference, "budget")


def test_a_call_linearized_far_past_the_lowest_pending_one_spans_several_words():
    # One write spans 100 others that complete one after another: numbered by completion
    # it is call 100, and taking it first sets a bit 100 places up, in the set's second
    # word; the set shrinks back to one word as the others are linearized.
    history = [{"type": "invoke", "process": 0, "f": "write", "value": 7}]
    for i in range(100):
        history += [{"type": "invoke", "process": 1, "f": "write", "value": i % 3},
                    {"type": "ok", "process": 1, "f": "write", "value": i % 3}]
    history += [{"type": "ok", "process": 0, "f": "write", "value": 7},
                {"type": "invoke", "process": 2, "f": "read", "value": None},
                {"type": "ok", "process": 2, "f": "read", "value": 7}]
    model = make_model("cas-register", 0)
    calls = prepare(history, model).keys["all"]
    compiled, reference = outcomes(calls, model)
    assert compiled.valid is True
    assert_same(compiled, reference, "overflow")


@pytest.mark.parametrize("seed", range(4))
def test_more_than_64_calls_of_unknown_outcome_walk_as_the_reference(seed, monkeypatch):
    # their set spans several words: the interchangeable classes and the dominated sets
    # must work across words as in one
    monkeypatch.setattr(search_module, "CHECK_EVERY", 256)
    model = make_model("cas-register", 0)
    history = register_history(500, concurrency=12, seed=seed, timeout_rate=0.3,
                               stale_reads=0.2 if seed % 2 else 0.0)
    prepared = prepare(history, model, fail_cas="observed")
    calls = prepared.keys["all"]
    assert sum(c.ret is None for c in calls) > 64
    assert_same(*outcomes(calls, model), f"seed {seed}")


@pytest.mark.parametrize("values,reads", [
    ([7] * 64 + [100, 169], [169, 100]),
    ([7] * 64 + [100, 169, 3], [169, 3, 100, 7]),
    ([1, 2] * 33 + [100, 169], [169, 2, 100, 1]),
])
def test_unknown_call_sets_past_the_first_word_are_kept_apart(values, reads):
    # Writes that never complete, then reads that need the last ones (numbers 64 and
    # up) in an order the search finds only after backtracking: the configurations
    # reached with and without them differ only past the first 64 bits.
    history = [{"type": "invoke", "process": p, "f": "write", "value": v} for p, v in enumerate(values)]
    for r in reads:
        history += [{"type": "invoke", "process": 1000, "f": "read", "value": None},
                    {"type": "ok", "process": 1000, "f": "read", "value": r}]
    model = make_model("cas-register", 0)
    calls = prepare(history, model).keys["all"]
    compiled, reference = outcomes(calls, model)
    assert compiled.valid is True and compiled.configurations > len(reads) * 2
    assert_same(compiled, reference, "past 64")


@needs_compiled
def test_the_set_arithmetic_is_search_pys_on_sets_of_any_width():
    # search.py: rel |= 1 << (x - base); then while its lowest bit is set, shift it out
    # and move base up. The C does it on words; every width and carry must agree.
    rng = random.Random(7)
    for _ in range(3000):
        width = rng.choice([1, 5, 63, 64, 65, 127, 128, 129, 200, 300])
        rel = rng.getrandbits(width) & ~1   # bit 0 is the lowest pending call: never set
        if rng.random() < 0.3:
            rel |= ((1 << rng.randrange(1, width + 2)) - 1) & ~1   # a run of ones from bit 1 up
        base = rng.randrange(1000)
        x = base + rng.choice([0, 0, rng.randrange(width + 70)])
        expected_rel = rel | 1 << (x - base)
        expected_base = base
        if expected_rel & 1:
            shift = (~expected_rel & (expected_rel + 1)).bit_length() - 1
            expected_base += shift
            expected_rel >>= shift
        words = rel.to_bytes((rel.bit_length() + 63) // 64 * 8, "little")
        got_base, got_words = search_module._walk.add_known(base, words, x)
        assert (got_base, int.from_bytes(got_words, "little")) == (expected_base, expected_rel), (base, rel, x)
        assert len(got_words) == (expected_rel.bit_length() + 63) // 64 * 8   # no zero words kept


@needs_compiled
@pytest.mark.parametrize("concurrency,timeout_rate", [(3, 0.0), (8, 0.05), (12, 0.02), (6, 0.2), (20, 0.05)])
def test_failing_searches_are_decided_and_explained_by_the_c_walk_alone(concurrency, timeout_rate, monkeypatch):
    # Long histories with stale reads and timeouts: the search backtracks far and often
    # before it fails, so the stack at the furthest point is copied in pieces. The C walk
    # must give the whole explanation itself (the Python walk is not run), and the
    # checker's result must be the one the Python walk gives.
    history = register_history(3000, concurrency=concurrency, keys=4, seed=concurrency,
                               timeout_rate=timeout_rate, stale_reads=0.03)
    checker = LinearizableChecker("cas-register", initial=0, independent=True, processes=1)
    with monkeypatch.context() as python_only:
        python_only.setattr(search_module, "_walk", None)
        reference = checker.check(history)
    assert reference["valid"] is False

    def no_python_walk(n):
        raise AssertionError("the Python walk ran")
    monkeypatch.setattr(search_module, "_links", no_python_walk)
    compiled = checker.check(history)
    for result in (compiled, reference):
        result.pop("elapsed")
    assert compiled == reference


def test_a_furthest_point_reached_by_several_reads_at_once_names_the_last_of_them():
    # The two reads of 1 are taken in one read-only pass; the configuration after it is
    # the furthest point, and "the op linearized last" there is the later read.
    history = [{"type": "invoke", "process": 0, "f": "write", "value": 1},
               {"type": "ok", "process": 0, "f": "write", "value": 1},
               {"type": "invoke", "process": 1, "f": "read", "value": None},
               {"type": "invoke", "process": 2, "f": "read", "value": None},
               {"type": "ok", "process": 1, "f": "read", "value": 1},
               {"type": "ok", "process": 2, "f": "read", "value": 1},
               {"type": "invoke", "process": 3, "f": "read", "value": None},
               {"type": "ok", "process": 3, "f": "read", "value": 2}]
    model = make_model("cas-register", 0)
    calls = prepare(history, model).keys["all"]
    compiled, reference = outcomes(calls, model)
    assert_same(compiled, reference, "a pass at the furthest point")
    assert compiled.valid is False
    assert [calls[cid].process for cid, _ in compiled.path] == [0, 1, 2]
    assert [calls[last].process for _, _, last in compiled.finals] == [2]


@needs_compiled
def test_the_walk_takes_a_list_of_calls_or_prepares_calls_and_nothing_else():
    model = make_model("cas-register", 0)
    calls = prepare(register_history(50, concurrency=3, seed=1), model).keys["all"]
    assert search(calls, model).valid is search(list(calls), model).valid is True
    with pytest.raises(TypeError, match="a list of calls.Call, or a _prepare.Calls"):
        search(tuple(calls), model)


@pytest.mark.slow
def test_a_search_of_millions_of_configurations_with_many_minimal_sets_fits_its_memory_budget():
    # 60 processes on 2 keys, 10% timeouts: one key's search makes 6.5 million
    # configurations, most of them new minimal sets of unknown calls of the same few
    # hundred thousand entries. Rewriting each entry's sets whole for every new one made
    # the C cache's arena grow past the 1 GiB budget ("unknown"); it needs ~150 MB.
    history = register_history(6000, concurrency=60, keys=2, seed=24, timeout_rate=0.10)
    result = LinearizableChecker("cas-register", initial=0, independent=True, fail_cas="observed",
                                 processes=1).check(history)
    assert result["valid"] is True, result["unknown_reasons"]
    assert result["configurations"] > 5_000_000
