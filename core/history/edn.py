"""Jepsen's history.edn: read and write EDN, and convert op maps to and from our ops.

Keywords are read as `Keyword`, a str that equals its plain name (`:cas` == "cas"), so the
checkers see the same values as from JSON, while the writer can still emit `:cas`: reading
and writing round-trips. Sets are read as `EdnSet` (a list, since elements may be lists) and
tagged literals as `Tagged`; a record literal such as `#jepsen.history.Op{...}` is read as
its map. Accepts a file holding one vector of op maps or one op map per line (Jepsen
writes both), with `;` comments, commas as whitespace and `#_` discards.
"""
from __future__ import annotations

import re

from .op import History, HistoryError


class Keyword(str):
    """An EDN keyword, `:name` (or `:ns/name`); compares and hashes as its name."""
    __slots__ = ()

    def __repr__(self):
        return ":" + str.__str__(self)


class Symbol(str):
    __slots__ = ()


class EdnSet(list):
    """An EDN set `#{...}`, kept as a list because its elements may be unhashable."""


class Tagged:
    __slots__ = ("tag", "value")

    def __init__(self, tag: str, value):
        self.tag, self.value = tag, value

    def __eq__(self, other):
        return isinstance(other, Tagged) and (self.tag, self.value) == (other.tag, other.value)

    def __repr__(self):
        return f"#{self.tag} {self.value!r}"


_TOKEN = re.compile(r"""
    (?P<ws>[\s,]+|;[^\n]*)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<open>\#\{|[\[\{\(])
  | (?P<close>[\]\}\)])
  | (?P<discard>\#_)
  | (?P<tag>\#[A-Za-z][\w.\-/]*)
  | (?P<char>\\(?:newline|space|tab|return|u[0-9a-fA-F]{4}|.))
  | (?P<atom>[^\s,;"\[\]\{\}\(\)\\]+)
""", re.X)

_INT = re.compile(r"[+-]?\d+N?$")
_FLOAT = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?M?$")
_STR_ESC = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_CHARS = {"newline": "\n", "space": " ", "tab": "\t", "return": "\r"}
_CLOSER = {"[": "]", "{": "}", "(": ")", "#{": "}"}


def _atom(text: str):
    if text == "nil":
        return None
    if text == "true":
        return True
    if text == "false":
        return False
    if text[0] == ":":
        return Keyword(text[1:])
    if _INT.match(text):
        return int(text.rstrip("N"))
    if _FLOAT.match(text):
        return float(text.rstrip("M"))
    if re.match(r"[+-]?\d+/\d+$", text):
        a, b = text.split("/")
        return int(a) / int(b)
    return Symbol(text)


def _unescape(body: str) -> str:
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            n = body[i + 1]
            if n == "u":
                out.append(chr(int(body[i + 2:i + 6], 16)))
                i += 6
                continue
            out.append(_STR_ESC.get(n, n))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_edn(text: str, source: str = "<edn>") -> list[tuple[int, object, list[int]]]:
    """Parse every top-level form; return (line, form, element_lines) triples, where
    element_lines are the start lines of a top-level collection's elements (so an error
    in the k-th op of a vector can name its line). Errors name the line."""
    forms: list[tuple[int, object, list[int]]] = []
    # Each open collection: [opener, items, line, element_lines]. Tags and discards wait
    # in `pending` (one list per depth) for the next complete form.
    stack: list[list] = []
    pending: list[list] = [[]]
    pos, line, n = 0, 1, len(text)

    def emit(value, at_line, element_lines=()):
        prefixes = pending[-1]
        while prefixes:
            kind = prefixes.pop()
            if kind[0] == "discard":
                return
            if not isinstance(value, dict):  # a record literal reads as its map
                value = Tagged(kind[1], value)
        if stack:
            stack[-1][1].append(value)
            stack[-1][3].append(at_line)
        else:
            forms.append((at_line, value, list(element_lines)))

    while pos < n:
        m = _TOKEN.match(text, pos)
        if not m:
            raise HistoryError(f"{source}:{line}: cannot read EDN near {text[pos:pos + 20]!r}")
        kind, tok = m.lastgroup, m.group()
        start_line = line
        line += tok.count("\n")
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "str":
            emit(_unescape(tok[1:-1]), start_line)
        elif kind == "atom":
            emit(_atom(tok), start_line)
        elif kind == "char":
            body = tok[1:]
            if body in _CHARS:
                emit(_CHARS[body], start_line)
            elif len(body) == 5 and body[0] == "u":
                emit(chr(int(body[1:], 16)), start_line)
            else:
                emit(body, start_line)
        elif kind == "open":
            stack.append([tok, [], start_line, []])
            pending.append([])
        elif kind == "close":
            if not stack:
                raise HistoryError(f"{source}:{start_line}: unmatched {tok!r}")
            opener, items, open_line, element_lines = stack.pop()
            pending.pop()
            if _CLOSER[opener] != tok:
                raise HistoryError(f"{source}:{start_line}: {opener!r} opened on line {open_line} closed by {tok!r}")
            if opener in ("[", "("):
                value = items
            elif opener == "#{":
                value = EdnSet(items)
            else:
                if len(items) % 2:
                    raise HistoryError(f"{source}:{open_line}: map with an odd number of forms")
                value = {_hashable(k): v for k, v in zip(items[::2], items[1::2])}
            emit(value, open_line, element_lines)
        elif kind == "discard":
            pending[-1].append(("discard",))
        elif kind == "tag":
            pending[-1].append(("tag", tok[1:]))
    if stack:
        raise HistoryError(f"{source}:{stack[-1][2]}: {stack[-1][0]!r} is never closed")
    return forms


def _hashable(k):
    if isinstance(k, list):
        return tuple(_hashable(x) for x in k)
    if isinstance(k, dict):
        return tuple(sorted(k.items()))
    return k


def loads(text: str):
    """One EDN value (the first form)."""
    forms = parse_edn(text)
    return forms[0][1] if forms else None


# ---------------------------------------------------------------- writing

def dumps(x) -> str:
    if x is None:
        return "nil"
    if x is True:
        return "true"
    if x is False:
        return "false"
    if isinstance(x, Keyword):
        return ":" + x
    if isinstance(x, Symbol):
        return str(x)
    if isinstance(x, str):
        return '"' + x.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(x, (int, float)):
        return repr(x)
    if isinstance(x, EdnSet) or isinstance(x, (set, frozenset)):
        return "#{" + " ".join(dumps(v) for v in x) + "}"
    if isinstance(x, (list, tuple)):
        return "[" + " ".join(dumps(v) for v in x) + "]"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{dumps(k)} {dumps(v)}" for k, v in x.items()) + "}"
    if isinstance(x, Tagged):
        return f"#{x.tag} {dumps(x.value)}"
    raise TypeError(f"cannot write {type(x).__name__} as EDN")


# ------------------------------------------------------ ops <-> op maps

# Fields whose plain-string values are written as keywords, as Jepsen writes them (values
# read from EDN keep their own kind: a Keyword stays a keyword, a string a string).
_KEYWORD_FIELDS = ("type", "f")


def _op_from_map(m: dict) -> dict:
    return {str(k): v for k, v in m.items()}


def _op_to_map(op: dict) -> dict:
    m = {}
    for k, v in op.items():
        if k in _KEYWORD_FIELDS and isinstance(v, str):
            v = Keyword(v)
        elif k == "process" and isinstance(v, str):
            v = Keyword(v)
        m[Keyword(k)] = v
    return m


def read_edn_history(path: str) -> History:
    """Read a Jepsen history.edn (a vector of op maps, or op maps one per line)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    forms = parse_edn(text, source=path)
    if len(forms) == 1 and isinstance(forms[0][1], list):
        _, items, lines = forms[0]
    else:
        items = [f for _, f, _ in forms]
        lines = [ln for ln, _, _ in forms]
    ops = []
    for i, (item, ln) in enumerate(zip(items, lines)):
        if not isinstance(item, dict):
            raise HistoryError(f"{path}:{ln}: expected an op map, got {dumps(item)[:60]}")
        ops.append(_op_from_map(item))
    return History(ops, source=path, lines=lines)


def write_edn_history(ops, path: str) -> None:
    """Write ops as Jepsen's history.edn: one op map per line."""
    with open(path, "w", encoding="utf-8") as f:
        for op in ops:
            f.write(dumps(_op_to_map(op)) + "\n")
