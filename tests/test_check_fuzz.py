"""`tectonic check` on histories with one thing wrong: a verdict, or one line and exit 254.

Valid register and list-append histories get a field of an op replaced by a value of
another kind, removed, or an op dropped or doubled; each is checked through the CLI's
own entry point, in this process. Whatever the damage, the answer is a verdict (0, 1, 2)
or a user error (254, one line): never an internal error (255), the sign of a malformed
input that reached code assuming it was well formed."""
import copy
import json
import random

import os

import pytest

from harness.cli import main

ATTEMPTS = int(os.environ.get("TECTONIC_FUZZ_ATTEMPTS", "150"))  # more, to hunt

ODD = [None, True, False, 0, -1, 7, 1.5, 2 ** 70, float("inf"), "", "x", "nemesis", "invoke", "ok",
       "fail", "info", "read", "write", "cas", "txn", [], [1], [1, 2], [[1]], [1, [2, 3]], {}, {"a": 1},
       ["append", "k", 1], [["append", "k", 1]], [["r", "k", None]], [["r", "k", [1, 2]]],
       [["r", "k", 5]], [["w", "k", 1]], [["append"]], [[]], [None], ["k", None]]


def register_history(rng):
    ops, value = [], 0
    for i in range(12):
        p = i % 3
        f = rng.choice(["read", "write", "cas"])
        v = {"read": None, "write": rng.randint(0, 3), "cas": [rng.randint(0, 3), rng.randint(0, 3)]}[f]
        ops.append({"type": "invoke", "process": p, "f": f, "value": v, "time": 2 * i})
        if f == "write":
            value = v
        out = value if f == "read" else v
        ops.append({"type": rng.choice(["ok", "ok", "info", "fail"]) if f != "read" else "ok",
                    "process": p, "f": f, "value": out, "time": 2 * i + 1})
    return ops


def append_history(rng):
    ops, lists = [], {"x": [], "y": []}
    for i in range(10):
        p = i % 3
        txn = []
        for _ in range(rng.randint(1, 3)):
            k = rng.choice("xy")
            if rng.random() < 0.5:
                lists[k].append(i * 10 + len(txn))
                txn.append(["append", k, lists[k][-1]])
            else:
                txn.append(["r", k, list(lists[k])])
        ops.append({"type": "invoke", "process": p, "f": "txn",
                    "value": [[f, k, None if f == "r" else v] for f, k, v in txn]})
        ops.append({"type": "ok", "process": p, "f": "txn", "value": txn})
    return ops


def rw_history(rng):
    ops, registers = [], {"x": None, "y": None}
    for i in range(10):
        txn = []
        for j in range(rng.randint(1, 3)):
            k = rng.choice("xy")
            if rng.random() < 0.5:
                registers[k] = i * 10 + j
                txn.append(["w", k, registers[k]])
            else:
                txn.append(["r", k, registers[k]])
        ops.append({"type": "invoke", "process": i % 3, "f": "txn",
                    "value": [[f, k, None if f == "r" else v] for f, k, v in txn]})
        ops.append({"type": "ok", "process": i % 3, "f": "txn", "value": txn})
    return ops


def damaged(ops, rng):
    ops = copy.deepcopy(ops)
    i = rng.randrange(len(ops))
    what = rng.random()
    if what < 0.1:
        del ops[i]
    elif what < 0.2:
        ops.insert(i, copy.deepcopy(ops[i]))
    elif what < 0.3:
        ops[i].pop(rng.choice(list(ops[i])))
    elif what < 0.5 and isinstance(ops[i].get("value"), list) and ops[i]["value"]:
        value = ops[i]["value"]
        j = rng.randrange(len(value))
        if isinstance(value[j], list) and value[j] and rng.random() < 0.7:
            value[j][rng.randrange(len(value[j]))] = rng.choice(ODD)
        else:
            value[j] = rng.choice(ODD)
    else:
        ops[i][rng.choice(["type", "process", "f", "value", "time", "index"])] = rng.choice(ODD)
    return ops


def run_check(tmp_path, ops, argv, capsys):
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(op) + "\n" for op in ops))
    with pytest.raises(SystemExit) as end:
        main(["check", str(path), *argv])
    return end.value.code, capsys.readouterr().err


@pytest.mark.parametrize("make, argv", [
    (register_history, ["--model", "cas-register", "--initial", "0"]),
    (register_history, ["--model", "register"]),
    (append_history, ["--workload", "list-append"]),
    (rw_history, ["--workload", "rw-register"]),
], ids=["cas-register", "register", "list-append", "rw-register"])
def test_a_damaged_history_gets_a_verdict_or_one_line_254(make, argv, tmp_path, capsys):
    rng = random.Random(17)
    codes = set()
    for attempt in range(ATTEMPTS):
        ops = damaged(make(rng), rng)
        code, err = run_check(tmp_path, ops, argv, capsys)
        codes.add(code)
        assert code in (0, 1, 2, 254), (code, err, ops)
        if code == 254:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("tectonic: "), (err, ops)
    assert 254 in codes and codes & {0, 1}, codes   # both kinds of answer were met
