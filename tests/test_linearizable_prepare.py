"""The compiled preparation loop (checkers/linearizable/_prepare.c) against the Python one.

`prepare` runs the C loop and falls back to `prepare_op_by_op` (the reference) for what
the C does not take. Whatever path it took, it must give exactly what the reference
gives: the same calls field by field, the keys in the same order, the same counts, and
on a malformed history the same error. The histories are random ones of every model,
with independent keys of every type, nemesis ops, lone completions, ops never
completed, and then broken in each way the reference names.
"""
import random
import struct

import pytest

from checkers.linearizable import calls as calls_module
from checkers.linearizable import make_model
from checkers.linearizable.calls import prepare, prepare_op_by_op
from core.history import HistoryError

from .test_linearizable_properties import MODEL_CASES, random_history

KEYS = [0, 1, 2, "a", "1", True, 1.5, None, ["x", 1], {"k": 1}]


def with_keys(history, rng, keys):
    """Jepsen's independent [key, value] tuples: each op's invocation and completion get
    one key, drawn from `keys`."""
    key_of, out = {}, []
    for op in history:
        op = dict(op)
        p = op["process"]
        if op["type"] == "invoke":
            key_of[p] = rng.choice(keys)
        op["value"] = [key_of[p], op.get("value")]
        out.append(op)
    return out


def decorate(history, rng):
    """Nemesis ops, lone completions and extra fields sprinkled in."""
    out = []
    for op in history:
        if rng.random() < 0.08:
            out.append({"type": "invoke", "process": "nemesis", "f": "partition", "value": None})
            out.append({"type": rng.choice(["info", "ok"]), "process": "nemesis", "f": "partition",
                        "value": "cut"})
        if rng.random() < 0.03:   # completed, never invoked (as far as the history shows)
            lone = dict(op, type=rng.choice(["ok", "info", "fail"]), process=1000 + len(out))
            out.append(lone)
        out.append(dict(op, time=len(out), index=len(out)))
    return out


# _calls.h's Row: at, inv, ret, end (-1: none); inp, out, pure, need, then, answer,
# process, f, value, kind
ROW = struct.Struct("qqqq" + "P" * 10)


def packed_rows(calls):
    rows = memoryview(calls).cast("B")
    return [ROW.unpack_from(rows, j)[:9] + ROW.unpack_from(rows, j)[10:] for j in range(0, len(rows), ROW.size)]


def unpacked(c):
    """A call as its row should say it (the objects by identity: a pointer is an id)."""
    return (c.at, c.inv, -1 if c.ret is None else c.ret, -1 if c.end is None else c.end, id(c.inp), id(c.out),
            id(c.pure), id(c.need), id(c.then), id(c.process), id(c.f), id(c.value), id(c.kind))


def same(history, model, **kw):
    """prepare and the reference agree on `history` (both raise the same error, or both
    give the same calls); True if `history` prepared without an error."""
    try:
        expected = prepare_op_by_op(history, model, **kw)
    except (HistoryError, TypeError) as e:
        with pytest.raises(type(e)) as raised:
            prepare(history, model, **kw)
        assert str(raised.value) == str(e)
        return False
    got = prepare(history, model, **kw)
    assert list(got.keys) == list(expected.keys)
    for key, calls in expected.keys.items():
        assert [tuple(c) for c in got.keys[key]] == [tuple(c) for c in calls], key
        assert all(type(c) is calls_module.Call for c in got.keys[key])
    for key, calls in got.keys.items():
        if not isinstance(calls, list):   # the C loop's Calls: its packed rows are the calls' own fields
            assert packed_rows(calls) == [unpacked(c) for c in calls], key
            assert all(a is b for a, b in zip(calls, calls)), \
                "the calls are made once"
    assert (got.dropped_fail, got.skipped_unknown, got.ignored) == \
           (expected.dropped_fail, expected.skipped_unknown, expected.ignored)
    return True


def test_the_compiled_loop_is_built():
    # setup.sh compiles it; without it every history takes the Python loop (correct,
    # three times slower), and the tests below would compare the reference with itself.
    assert calls_module._prepare is not None, "checkers/linearizable/_prepare.c is not built: run ./setup.sh"


@pytest.mark.parametrize("model_name,options", MODEL_CASES, ids=[f"{m}-{o}" for m, o in MODEL_CASES])
def test_random_histories_prepare_exactly_as_the_reference(model_name, options):
    model = make_model(model_name, options.get("initial"), options.get("nil_read", "unknown"))
    taken_by_c = 0
    for seed in range(120):
        rng = random.Random(seed)
        history = random_history(model_name, rng, rng.randrange(1, 25))
        if model_name == "register":
            history = [op for op in history if op["f"] != "cas"]
        independent = rng.random() < 0.5
        if independent:
            history = with_keys(history, rng, rng.choice([KEYS[:3], KEYS[3:5], KEYS]))
        if rng.random() < 0.5:
            history = decorate(history, rng)
        fail_cas = rng.choice(["ignored", "observed"])
        kw = dict(independent=independent, fail_cas=fail_cas)
        same(history, model, **kw)
        if calls_module._prepare is not None and _c_takes(history, model, **kw):
            taken_by_c += 1
    # the C loop must take the common histories itself, not hand them all back
    assert calls_module._prepare is None or taken_by_c > 80, taken_by_c


def _c_takes(history, model, *, independent, fail_cas):
    return calls_module._prepare.prepare(
        history, calls_module._asker(model), model.key_field, independent, fail_cas == "observed",
        calls_module.Call, calls_module.key_name, calls_module.UNKNOWN, calls_module.FAILED,
        calls_module._PLAIN, calls_module.SINGLE_KEY) is not None


BREAKS = {
    "an op that is not a dict": lambda h, i: h[:i] + [["invoke", 1]] + h[i:],
    "no type": lambda h, i: h[:i] + [{k: v for k, v in h[i].items() if k != "type"}] + h[i + 1:],
    "an unknown type": lambda h, i: h[:i] + [dict(h[i], type="done")] + h[i + 1:],
    "a type that is no str": lambda h, i: h[:i] + [dict(h[i], type=["ok"])] + h[i + 1:],
    "an unhashable process": lambda h, i: h[:i] + [dict(h[i], process=[1])] + h[i + 1:],
    "invoked twice": lambda h, i: h[:i + 1] + [h[i]] + h[i + 1:] if h[i]["type"] == "invoke" else h,
    "f not a str": lambda h, i: [dict(op, f=7) if j == i else op for j, op in enumerate(h)],
    "an f the model lacks": lambda h, i: [dict(op, f="frobnicate") if j == i else op for j, op in enumerate(h)],
    "a value that is no pair": lambda h, i: [dict(op, value=5) if j == i else op for j, op in enumerate(h)],
}


@pytest.mark.parametrize("how", sorted(BREAKS))
def test_malformed_histories_raise_as_the_reference_does(how):
    model = make_model("cas-register", 0)
    raised = 0
    for seed in range(40):
        rng = random.Random(seed)
        history = with_keys(random_history("cas-register", rng, rng.randrange(2, 12)), rng, KEYS[:3])
        broken = BREAKS[how](history, rng.randrange(len(history)))
        if not same(broken, model, independent=True, fail_cas="observed"):
            raised += 1
    assert raised > 0, f"{how}: no broken history was rejected"


def test_values_that_compare_equal_across_types_stay_apart():
    # 1 == True == 1.0 and [1, 2] == [1, 2] as a tuple: the model's answers are
    # remembered per (f, value, outcome), so the memo must keep the types apart.
    model = make_model("cas-register", 0)
    history = []
    for p, value in enumerate([1, True, 1.0, [1, 2], (1, 2), [True, 2], "1", None, 0, False]):
        f = "cas" if isinstance(value, (list, tuple)) else "write"
        history.append({"type": "invoke", "process": p, "f": f, "value": value})
        history.append({"type": "ok", "process": p, "f": f, "value": value})
        history.append({"type": "invoke", "process": p, "f": "read", "value": None})
        history.append({"type": "ok", "process": p, "f": "read", "value": value})
    assert same(history, model)
    got = prepare(history, model).keys["all"]
    assert [type(c.inp[1]) for c in got if c.f == "write"] == [int, bool, float, str, type(None), int, bool]


def test_processes_equal_across_types_pair_as_the_reference_pairs_them():
    # a dict pairs an invocation of process 1 with a completion of process True or 1.0
    model = make_model("cas-register", 0)
    for completion_process in (True, 1.0, 1, "1", None):
        history = [{"type": "invoke", "process": 1, "f": "write", "value": 3},
                   {"type": "ok", "process": completion_process, "f": "write", "value": 3},
                   {"type": "invoke", "process": 2, "f": "read", "value": None},
                   {"type": "ok", "process": 2, "f": "read", "value": 3}]
        assert same(history, model)
