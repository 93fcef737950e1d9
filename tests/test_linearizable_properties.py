"""The search against histories whose verdict is known another way.

Histories of a simulated linearizable register must always check valid; histories with
planted stale reads, and random histories of every model, must get exactly the verdict of
a brute-force checker that tries every order (small histories). The brute force shares
nothing with the search but the models' step functions (and for the register, not even
those). A failure names the seed: rerun with it to reproduce.
"""
import random

import pytest

from checkers.linearizable import LinearizableChecker, make_model
from checkers.linearizable.calls import prepare
from checkers.linearizable.models import FAILED, UNKNOWN
from testkit.lock_history import lock_history, overlapping_holds
from testkit.register_history import register_history


def check(history, **kw):
    kw.setdefault("time_limit", 30)
    model = kw.pop("model", "cas-register")
    return LinearizableChecker(model, **kw).check(history, {})


# -- brute force ----------------------------------------------------------------------

def brute_force_register(history, *, fail_cas_observed, initial=0):
    """Linearizable? By trying every order of a register history, written from scratch."""
    open_at, ops = {}, []
    for pos, op in enumerate(history):
        if op["type"] == "invoke":
            open_at[op["process"]] = (pos, op)
            continue
        inv_pos, inv = open_at.pop(op["process"])
        if op["type"] == "fail" and not (op["f"] == "cas" and fail_cas_observed):
            continue
        outcome = {"ok": "ok", "fail": "failed", "info": "unknown"}[op["type"]]
        ops.append((inv_pos, pos if outcome != "unknown" else None, op["f"], inv["value"], op["value"], outcome))
    for inv_pos, inv in open_at.values():
        ops.append((inv_pos, None, inv["f"], inv["value"], None, "unknown"))

    def apply(state, op):
        _, _, f, arg, result, outcome = op
        if f == "read":
            return (outcome == "unknown" or result == state), state
        if f == "write":
            return True, arg
        if outcome == "failed":
            return state != arg[0], state
        if state == arg[0]:
            return True, arg[1]
        return outcome == "unknown", state

    must = frozenset(i for i, op in enumerate(ops) if op[1] is not None)
    seen = set()

    def search(state, done):
        if must <= done:
            return True
        if (state, done) in seen:
            return False
        seen.add((state, done))
        deadline = min(ops[i][1] for i in must - done)
        for i, op in enumerate(ops):
            if i not in done and op[0] < deadline:
                ok, after = apply(state, op)
                if ok and search(after, done | {i}):
                    return True
        return False

    return search(initial, frozenset())


def brute_force_model(calls, model):
    """Linearizable? Every order of the calls (a prepared key), by the model's step.
    Also the furthest point any order reaches: the completion position of the first
    call it could not linearize (None when linearizable)."""
    must = frozenset(i for i, c in enumerate(calls) if c.ret is not None)
    seen = set()
    furthest = [-1]

    def search(state, done):
        if must <= done:
            return True
        if (state, done) in seen:
            return False
        seen.add((state, done))
        deadline = min(calls[i].ret for i in must - done)
        furthest[0] = max(furthest[0], deadline)
        for i, c in enumerate(calls):
            if i not in done and c.inv < deadline:
                ok, after = model.step(state, c.inp, c.out)
                if ok and search(after, done | {i}):
                    return True
        return False

    valid = search(model.init(), frozenset())
    return valid, None if valid else furthest[0]


# -- simulated register -----------------------------------------------------------------

@pytest.mark.parametrize("fail_cas", ["ignored", "observed"])
def test_simulated_register_histories_are_linearizable(fail_cas):
    for seed in range(150):
        rng = random.Random(seed)
        keys = rng.choice([None, 3])
        history = register_history(rng.randrange(5, 120), concurrency=rng.randrange(1, 7), keys=keys,
                                   seed=seed, timeout_rate=rng.choice([0.0, 0.1, 0.3]))
        result = check(history, initial=0, independent=keys is not None, fail_cas=fail_cas)
        assert result["valid"] is True, f"seed {seed}: {result['explanation']}"


def test_a_long_simulated_history_with_many_timeouts_is_linearizable():
    history = register_history(3000, concurrency=8, seed=7, timeout_rate=0.05)
    result = check(history, initial=0, fail_cas="observed")
    assert result["valid"] is True
    assert result["ops_checked"] > 2000


@pytest.mark.parametrize("fail_cas", ["ignored", "observed"])
def test_planted_stale_reads_are_caught_exactly_when_brute_force_says_so(fail_cas):
    verdicts = {True: 0, False: 0}
    for seed in range(400):
        rng = random.Random(seed)
        history = register_history(rng.randrange(4, 12), concurrency=rng.randrange(2, 5), seed=seed,
                                   timeout_rate=rng.choice([0.0, 0.2, 0.4]), stale_reads=0.9, values=3)
        expected = brute_force_register(history, fail_cas_observed=fail_cas == "observed")
        result = check(history, initial=0, fail_cas=fail_cas)
        assert result["valid"] is expected, f"seed {seed}: brute force says {expected}\n{history}"
        verdicts[expected] += 1
    # Both kinds must occur, or the comparison proves little.
    assert verdicts[True] > 40 and verdicts[False] > 40, verdicts


# -- random histories of every model --------------------------------------------------

def _random_op(model_name, rng):
    small = rng.randrange(3)
    if model_name == "mutex":
        return rng.choice(["acquire", "release"]), None, None
    if model_name == "set":
        if rng.random() < 0.6:
            return "add", small, small
        return "read", None, rng.sample(range(3), rng.randrange(4))
    if model_name in ("fifo-queue", "unordered-queue"):
        if rng.random() < 0.5:
            return "enqueue", small, small
        return "dequeue", None, rng.choice([None, 0, 1, 2])
    if model_name == "multi-register":
        mops = [[rng.choice(["read", "write"]), rng.choice(["x", "y"]), rng.randrange(2)]
                for _ in range(rng.randrange(1, 3))]
        invoked = [[f, k, None if f == "read" else v] for f, k, v in mops]
        return "txn", invoked, mops
    if model_name == "kv":
        f = rng.choice(["get", "put", "append"])
        if f == "get":
            return f, None, rng.choice(["", "a", "ab", "b", "ba"])
        return f, rng.choice("ab"), None
    f = rng.choice(["read", "write", "cas"])
    if f == "read":
        return f, None, rng.choice([None, 0, 1, 2])
    if f == "write":
        return f, small, small
    arg = [rng.randrange(3), rng.randrange(3)]
    return f, arg, arg


def random_history(model_name, rng, n_ops):
    """Invocations and completions interleaved at random; outcomes at random."""
    history, open_ops, free = [], {}, list(range(4))
    next_process = 4
    while n_ops or open_ops:
        if n_ops and free and (not open_ops or rng.random() < 0.5):
            p = free.pop(rng.randrange(len(free)))
            f, value, result = _random_op(model_name, rng)
            op = {"type": "invoke", "process": p, "f": f, "value": value}
            if model_name == "kv":
                op["key"] = "k"
            history.append(op)
            open_ops[p] = (op, result)
            n_ops -= 1
            continue
        p = rng.choice(sorted(open_ops))
        invoke, result = open_ops.pop(p)
        kind = rng.choices(["ok", "info", "fail", "never"], [0.75, 0.12, 0.08, 0.05])[0]
        if kind != "never":  # else the invocation stays open to the end
            history.append(dict(invoke, type=kind, value=result if kind == "ok" else invoke["value"]))
        if kind in ("info", "never"):
            free.append(next_process)  # the thread goes on as a new process
            next_process += 1
        else:
            free.append(p)
    return history


MODEL_CASES = [("cas-register", {"initial": 0}), ("cas-register", {"nil_read": "absent"}),
               ("register", {"initial": 0}), ("mutex", {}), ("set", {}), ("fifo-queue", {}),
               ("unordered-queue", {}), ("multi-register", {"initial": {"x": 0, "y": 0}}),
               ("kv", {})]


@pytest.mark.parametrize("model_name,options", MODEL_CASES, ids=[f"{m}-{o}" for m, o in MODEL_CASES])
def test_random_histories_get_the_brute_force_verdict(model_name, options):
    verdicts = {True: 0, False: 0}
    for seed in range(150):
        rng = random.Random(seed)
        history = random_history(model_name, rng, rng.randrange(2, 9))
        if model_name == "register":
            history = [op for op in history if op["f"] != "cas"]
        fail_cas = rng.choice(["ignored", "observed"])
        model = make_model(model_name, options.get("initial"), options.get("nil_read", "unknown"))
        calls = prepare(history, model, fail_cas=fail_cas).keys
        expected, furthest = brute_force_model(calls["k" if model_name == "kv" else "all"], model) \
            if calls else (True, None)
        result = check(history, model=model_name, fail_cas=fail_cas, **options)
        assert result["valid"] is expected, f"seed {seed} ({fail_cas}): brute force says {expected}\n{history}"
        if not expected:
            # The op named is the one whose completion no order gets past.
            failure = next(iter(result["failures"].values()))
            assert failure["op"]["index"] == furthest, f"seed {seed}: {result['explanation']}"
        verdicts[expected] += 1
    assert verdicts[True] > 10 and verdicts[False] > 10, verdicts


def test_mutex_verdict_is_exactly_whether_two_holds_overlap():
    # For a lock without owners no order exists exactly when two processes each sat between
    # an acquire that succeeded and their release at once: the checker must say so on lock
    # histories of every kind (double grants, timeouts, open ops, holds never released),
    # and on no others. Longer than the brute force could try.
    verdicts = {True: 0, False: 0}
    for seed in range(300):
        rng = random.Random(seed)
        history = lock_history(rng, processes=rng.randrange(2, 6), n_ops=rng.randrange(4, 60),
                               double_grant=rng.choice([0.0, 0.1, 0.3]))
        valid = check(history, model="mutex")["valid"]
        assert valid is not bool(overlapping_holds(history)), f"seed {seed}: checker says {valid}\n{history}"
        verdicts[valid] += 1
    assert verdicts[True] > 30 and verdicts[False] > 30, verdicts


def test_brute_force_model_agrees_with_the_register_brute_force():
    # The two brute forces check each other: one by our models, one written from scratch.
    model = make_model("cas-register", 0)
    for seed in range(200):
        rng = random.Random(seed)
        history = register_history(rng.randrange(3, 9), concurrency=3, seed=seed, timeout_rate=0.2,
                                   stale_reads=0.5, values=3)
        calls = prepare(history, model, fail_cas="observed").keys.get("all", [])
        assert brute_force_model(calls, model)[0] == brute_force_register(history, fail_cas_observed=True), seed


def test_outcome_markers_survive_in_calls():
    history = [{"type": "invoke", "process": 0, "f": "cas", "value": [1, 2]},
               {"type": "fail", "process": 0, "f": "cas", "value": [1, 2]},
               {"type": "invoke", "process": 1, "f": "cas", "value": [2, 3]},
               {"type": "info", "process": 1, "f": "cas", "value": [2, 3]}]
    calls = prepare(history, make_model("cas-register", 0), fail_cas="observed").keys["all"]
    assert [c.out for c in calls] == [FAILED, UNKNOWN]
    assert [c.ret for c in calls] == [1, None]
