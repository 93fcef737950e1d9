"""Jepsen 0.1-era log lines, as in Porcupine's etcd test data:

    INFO  jepsen.util - 3\t:invoke\t:cas\t[1 4]

Fields (process, type, f, value) are separated by a tab or a run of spaces; the value is
EDN. A completion whose value is a keyword such as `:timed-out` carries no result: it
becomes `error` and the op keeps its invocation's value (for `:info` that is what may or
may not have happened; for a `:fail :read :timed-out` it is an unknown read).
"""
from __future__ import annotations

import re

from .edn import Keyword, parse_edn
from .op import History, HistoryError

_LINE = re.compile(r"^.*?jepsen\.util\s+-\s+(\S+)\s+:(\w+)\s+:([\w-]+)\s*(.*?)\s*$")


def read_jepsen_log(path: str) -> History:
    ops, lines = [], []
    open_value: dict[object, object] = {}
    with open(path, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            m = _LINE.match(text)
            if not m:
                raise HistoryError(f"{path}:{n}: not a Jepsen log line "
                                   f"(expected 'INFO jepsen.util - <process> :<type> :<f> <value>')")
            proc_s, typ, f_, value_s = m.groups()
            process: object = int(proc_s) if proc_s.lstrip("-").isdigit() else proc_s.lstrip(":")
            try:
                forms = parse_edn(value_s, source=f"{path}:{n}") if value_s else []
            except HistoryError as e:
                raise HistoryError(f"{path}:{n}: unreadable value {value_s!r} ({e})") from None
            value = forms[0][1] if forms else None
            op = {"type": typ, "process": process, "f": f_, "value": value}
            if typ == "invoke":
                open_value[process] = value
            else:
                invoked = open_value.pop(process, None)
                if isinstance(value, Keyword):
                    op["error"] = str(value)
                    op["value"] = invoked
            ops.append(op)
            lines.append(n)
    for i, op in enumerate(ops):
        op["index"] = i
    return History(ops, source=path, lines=lines)
