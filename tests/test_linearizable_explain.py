"""A failed key's explanation against its definition, on histories of every model.

explain_failure looks only where the answer can be: the tail of the partial
linearization it shows, and for the final paths only the calls that complete after the
op it could not linearize, or never (the search had linearized all the others); it finds
the previous ok op and the concurrent ones in the same one pass. Here the same
explanation is worked out the plain way, over every call (the final paths from every
call invoked before, as their docstring defines them), and must be equal.
"""
import random

import pytest

from checkers.linearizable import make_model
from checkers.linearizable import explain as explain_module
from checkers.linearizable.calls import prepare
from checkers.linearizable.explain import SHOWN_LINEARIZED, explain_failure, op_ref
from checkers.linearizable.search import search
from testkit.register_history import register_history

from .test_linearizable_properties import MODEL_CASES, random_history


def plain_final_paths(calls, model, outcome, bad):
    """_final_paths with every call invoked before `bad` completed as a candidate (its
    docstring's definition), not only those _around keeps."""
    every = [i for i, c in enumerate(calls) if c.inv < bad.end and c is not bad]
    return explain_module._final_paths(calls, model, outcome, bad, every)


def assert_explained_as_defined(calls, model, outcome, what):
    got = explain_failure(calls, model, outcome)
    bad = calls[outcome.stuck_at]
    paths, cut = plain_final_paths(calls, model, outcome, bad)
    assert (got["final_paths"], got["final_paths_cut"]) == (paths, cut), what
    whole = [dict(op_ref(calls[cid], model), n=n, state=model.describe(state))
             for n, (cid, state) in enumerate(outcome.path, 1)]
    assert got["linearized_count"] == len(whole), what
    assert got["linearized"] == whole[-SHOWN_LINEARIZED:], what
    previous = max((c for c in calls if c.kind == "ok" and c.end is not None and c.end < bad.end),
                   key=lambda c: c.end, default=None)
    assert got["previous_ok"] == (op_ref(previous, model) if previous is not None else None), what
    number = {cid: n for n, (cid, _) in enumerate(outcome.path, 1)}
    concurrent = [i for i, c in enumerate(calls) if c is not bad and c.inv < bad.end
                  and (c.ret is None or c.end > bad.inv)][-explain_module.MAX_CONCURRENT:]
    assert got["concurrent"] == [dict(op_ref(calls[i], model), linearized=number.get(i)) for i in concurrent], what


@pytest.mark.parametrize("model_name,options", MODEL_CASES, ids=[f"{m}-{o}" for m, o in MODEL_CASES])
def test_small_failures_of_every_model_are_explained_as_defined(model_name, options):
    model = make_model(model_name, options.get("initial"), options.get("nil_read", "unknown"))
    failed = 0
    for seed in range(150):
        rng = random.Random(seed)
        history = random_history(model_name, rng, rng.randrange(2, 14))
        if model_name == "register":
            history = [op for op in history if op["f"] != "cas"]
        for key, calls in prepare(history, model).keys.items():
            outcome = search(calls, model)
            if outcome.valid is False:
                failed += 1
                assert_explained_as_defined(calls, model, outcome, f"seed {seed} key {key}")
    assert failed >= 5


@pytest.mark.parametrize("seed", range(5))
def test_long_failures_with_timeouts_are_explained_as_defined(seed):
    # many finals, long partial linearizations, calls of unknown outcome pending
    model = make_model("cas-register", 0)
    history = register_history(2000, concurrency=6, keys=3, seed=seed,
                               timeout_rate=0.02 * seed, stale_reads=0.03)
    paths = []
    for key, calls in prepare(history, model, independent=True).keys.items():
        outcome = search(calls, model)
        if outcome.valid is False:
            paths.append(len(outcome.path))
            assert_explained_as_defined(calls, model, outcome, f"seed {seed} key {key}")
    assert paths and max(paths) > SHOWN_LINEARIZED
