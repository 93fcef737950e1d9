"""Each sequential model, step by step, and the recipe for adding one."""
import textwrap

import pytest

from checkers.linearizable import FAILED, MODELS, UNKNOWN, LinearizableChecker, make_model
from checkers.linearizable import models as models_module


def run(model, *ops):
    """Apply (f, value, result) ops in order; the states after each, or the index of the
    first illegal one as ("illegal", i)."""
    state = model.init()
    states = []
    for i, (f, value, result) in enumerate(ops):
        inp, out = model.call(f, value, result)
        ok, state = model.step(state, inp, out)
        if not ok:
            return ("illegal", i)
        hash(state)
        states.append(state)
    return states


def test_every_model_is_registered_by_name():
    assert set(MODELS) == {"register", "cas-register", "kv", "multi-register", "set", "mutex",
                           "unordered-queue", "fifo-queue"}
    with pytest.raises(ValueError, match="unknown model 'regsiter'; known models: cas-register"):
        make_model("regsiter")
    with pytest.raises(ValueError, match="nil_read must be one of unknown, absent"):
        make_model("cas-register", nil_read="never")


def test_register_reads_what_was_written():
    m = make_model("register", 0)
    assert run(m, ("read", None, 0), ("write", 3, 3), ("read", None, 3)) == [0, 3, 3]
    assert run(m, ("write", 3, 3), ("read", None, 4)) == ("illegal", 1)
    with pytest.raises(ValueError, match="model register has no operation 'cas'"):
        m.call("cas", [0, 1], [0, 1])


def test_cas_register_success_failure_and_unknown_outcome():
    m = make_model("cas-register", 0)
    assert run(m, ("cas", [0, 5], [0, 5]), ("read", None, 5)) == [5, 5]
    assert run(m, ("cas", [1, 5], [1, 5])) == ("illegal", 0)
    # A failed CAS kept as an observation: legal only where the value differs.
    assert run(m, ("cas", [1, 5], FAILED)) == [0]
    assert run(m, ("cas", [0, 5], FAILED)) == ("illegal", 0)
    # Unknown outcome: applies when it can, is legal either way.
    assert run(m, ("cas", [0, 5], UNKNOWN)) == [5]
    assert run(m, ("cas", [2, 5], UNKNOWN)) == [0]
    with pytest.raises(ValueError, match=r"cas needs a value \[from to\], got 3"):
        m.call("cas", 3, 3)


def test_nil_reads_unknown_or_absent():
    unknown = make_model("cas-register", 0, "unknown")
    assert unknown.call("read", None, None) == (("read",), UNKNOWN)
    assert unknown.read_only(("read",), UNKNOWN)
    absent = make_model("cas-register", None, "absent")
    assert run(absent, ("read", None, None), ("write", 1, 1)) == [None, 1]
    assert run(absent, ("write", 1, 1), ("read", None, None)) == ("illegal", 1)
    assert absent.describe(None) == "the register is absent (never written)"
    assert unknown.describe(2) == "the register holds 2"


def test_register_words():
    m = make_model("cas-register", 0)
    assert m.describe_op(*m.call("cas", [1, 3], [1, 3])) == "cas 1->3"
    assert m.describe_op(*m.call("cas", [1, 3], FAILED)) == "cas 1->3 (failed: saw another value)"
    assert m.describe_op(*m.call("read", None, 4)) == "read 4"
    assert m.describe_op(*m.call("write", [1, 2], [1, 2])) == "write [1 2]"


def test_kv_get_put_append_on_strings_starting_empty():
    m = make_model("kv")
    assert m.key_field == "key"
    assert run(m, ("get", None, ""), ("append", "x", "x"), ("append", "y", "y"),
               ("get", None, "xy"), ("put", "z", "z"), ("get", None, "z")) == ["", "x", "xy", "xy", "z", "z"]
    assert run(m, ("append", "x", "x"), ("get", None, "")) == ("illegal", 1)


def test_multi_register_transactions_read_and_write_several_keys():
    m = make_model("multi-register", {"x": 0, "y": 0})
    ok = run(m, ("txn", [["write", "x", 1]], [["write", "x", 1]]),
             ("txn", [["read", "x", None], ["read", "y", None]], [["read", "x", 1], ["read", "y", 0]]))
    assert ok[-1] == (("x", 1), ("y", 0))
    assert run(m, ("txn", [["read", "x", None]], [["read", "x", 2]])) == ("illegal", 0)
    inp, out = m.call("txn", [["read", "x", None]], [["read", "x", None]])
    assert m.read_only(inp, out) and m.step(m.init(), inp, out)[0]
    assert m.describe(m.init()) == "the registers hold {x 0, y 0}"
    with pytest.raises(ValueError, match="txn micro-op must be read or write"):
        m.call("txn", [["append", "x", 1]], [["append", "x", 1]])
    with pytest.raises(ValueError, match="needs a map"):
        make_model("multi-register", 0)


def test_set_adds_and_reads_whole_set():
    m = make_model("set")
    assert run(m, ("add", 1, 1), ("add", 2, 2), ("read", None, [2, 1])) == \
        [frozenset({1}), frozenset({1, 2}), frozenset({1, 2})]
    assert run(m, ("add", 1, 1), ("read", None, [])) == ("illegal", 1)
    assert m.read_only(*m.call("read", None, UNKNOWN))


def test_mutex_alternates_acquire_and_release():
    m = make_model("mutex")
    assert run(m, ("acquire", None, None), ("release", None, None), ("acquire", None, None)) == [True, False, True]
    assert run(m, ("acquire", None, None), ("acquire", None, None)) == ("illegal", 1)
    assert run(m, ("release", None, None)) == ("illegal", 0)
    assert m.describe(True) == "the lock is held"


def test_unordered_queue_hands_out_elements_in_any_order():
    m = make_model("unordered-queue")
    assert run(m, ("enqueue", 1, 1), ("enqueue", 2, 2), ("dequeue", None, 2), ("dequeue", None, 1),
               ("dequeue", None, None)) == [(1,), (1, 2), (1,), (), ()]
    assert run(m, ("enqueue", 1, 1), ("dequeue", None, 3)) == ("illegal", 1)
    assert run(m, ("enqueue", 1, 1), ("dequeue", None, None)) == ("illegal", 1)
    # An indeterminate dequeue is left out (Knossos cannot linearize it either).
    assert m.read_only(*m.call("dequeue", None, UNKNOWN))


def test_fifo_queue_hands_out_the_head():
    m = make_model("fifo-queue")
    assert run(m, ("enqueue", 1, 1), ("enqueue", 2, 2), ("dequeue", None, 1)) == [(1,), (1, 2), (2,)]
    assert run(m, ("enqueue", 1, 1), ("enqueue", 2, 2), ("dequeue", None, 2)) == ("illegal", 2)
    # An indeterminate dequeue took the head, if there was one.
    assert run(m, ("enqueue", 1, 1), ("enqueue", 2, 2), ("dequeue", None, UNKNOWN),
               ("dequeue", None, 2)) == [(1,), (1, 2), (2,), ()]
    assert not m.read_only(*m.call("dequeue", None, UNKNOWN))


def test_edn_keywords_and_strings_are_the_same_keys():
    from core.history.edn import Keyword
    m = make_model("multi-register", {Keyword("x"): 0})
    assert run(m, ("txn", [["write", "x", 1]], [["write", "x", 1]]),
               ("txn", [[Keyword("read"), Keyword("x"), None]], [[Keyword("read"), Keyword("x"), 1]]))[-1] == (("x", 1),)


def test_the_adding_a_model_recipe_works(monkeypatch):
    # The docstring's example, run as written, registers a model the checker can use.
    recipe = models_module.__doc__.split("complete::", 1)[1].split("\nReads of nil", 1)[0]
    monkeypatch.setattr(models_module, "MODELS", dict(MODELS))
    exec(textwrap.dedent(recipe), dict(vars(models_module)))
    history = [{"type": "invoke", "process": 0, "f": "add", "value": 2},
               {"type": "ok", "process": 0, "f": "add", "value": 2},
               {"type": "invoke", "process": 1, "f": "read", "value": None},
               {"type": "ok", "process": 1, "f": "read", "value": 3}]
    result = LinearizableChecker("counter").check(history, {})
    assert result["valid"] is False
    assert result["failures"]["all"]["op"]["index"] == 3


@pytest.mark.parametrize("name, initial, nil_read", [("register", 0, "unknown"), ("cas-register", 0, "unknown"),
                                                     ("cas-register", None, "absent"), ("kv", None, "unknown")])
def test_transition_is_the_same_step_written_as_data(name, initial, nil_read):
    # The search applies an op by its (need, then) instead of calling step: for every op
    # and outcome, in every state, both must agree on whether it is legal and what follows.
    # (An op of unknown outcome may call illegal a state it would leave alone.)
    from checkers.linearizable.models import ANY, SAME, STEP
    model = make_model(name, initial, nil_read)
    states = [0, 1, 2, None, "", "a", "ab"] if name == "kv" else [0, 1, 2, None]
    if name == "kv":
        ops = [(f, v, r) for f in ("get", "put", "append") for v in (None, "a", "b")
               for r in ("", "a", "ab", UNKNOWN, None)]
    else:
        ops = [("read", None, r) for r in (0, 1, None, UNKNOWN, FAILED)]
        ops += [("write", v, r) for v in (0, 1, 2) for r in (None, UNKNOWN)]
        if name == "cas-register":
            ops += [("cas", [a, b], r) for a in (0, 1, None) for b in (1, 2) for r in (None, UNKNOWN, FAILED)]
    compared = 0
    for f, value, result in ops:
        inp, out = model.call(f, value, result)
        need, then = model.transition(inp, out)
        if need is STEP:
            continue
        compared += 1
        for state in states:
            legal, after = model.step(state, inp, out)
            data_legal = need is ANY or need == state
            if out is UNKNOWN and legal and not data_legal:
                assert after == state, (f, value, result, state)   # a no-op it may skip
                continue
            assert data_legal == legal, (f, value, result, state, need)
            if legal:
                assert (state if then is SAME else then) == after, (f, value, result, state)
    assert compared >= 8
