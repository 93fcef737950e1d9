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

    def __hash__(self):  # a tagged literal may be a map key
        return hash((self.tag, _hashable(self.value)))

    def __repr__(self):
        return f"#{self.tag} {self.value!r}"


# One token per match, with the whitespace, commas and comments before it (possessive: a
# token that fails after a long run of them must not make the regex retry every split).
# The groups' numbers are the token kinds the loop dispatches on.
_TOKEN = re.compile(r"""
    (?:[\s,]|;[^\n]*)*+
    (?:
      (\Z)                                     # 1 end of input
    | ("(?:[^"\\]|\\.)*+")                     # 2 string
    | (\#\{|[\[\{\(])                          # 3 open
    | ([\]\}\)])                               # 4 close
    | (\#_)                                    # 5 discard
    | (\#[A-Za-z][\w.\-/]*+)                   # 6 tag
    | (\\(?:newline|space|tab|return|u[0-9a-fA-F]{4}|.))  # 7 char
    | ([^\s,;"\[\]\{\}\(\)\\]++)               # 8 atom
    )""", re.X)
_END, _STR, _OPEN, _CLOSE, _DISCARD, _TAG, _CHAR, _ATOM = range(1, 9)
_SPACE = re.compile(r"(?:[\s,]|;[^\n]*)*+")

_INT = re.compile(r"[+-]?\d+N?$")
_FLOAT = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?M?$")
_STR_ESC = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_CHARS = {"newline": "\n", "space": " ", "tab": "\t", "return": "\r"}
_CLOSER = {"[": "]", "{": "}", "(": ")", "#{": "}"}
try:
    from . import _edn as _compiled   # compiled by setup.sh; absent where it could not be built
except ImportError:
    _compiled = None

_DISCARDED = object()   # what _prefixed makes of a form under #_
_UNSEEN = object()


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


def _char(body: str) -> str:
    if body in _CHARS:
        return _CHARS[body]
    if len(body) == 5 and body[0] == "u":
        return chr(int(body[1:], 16))
    return body


def _unescape(body: str) -> str:
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            n = body[i + 1]
            if n == "u":
                digits = body[i + 2:i + 6]
                if len(digits) != 4 or not all(d in "0123456789abcdefABCDEF" for d in digits):
                    raise ValueError(f"bad escape \\u{digits} in a string")
                out.append(chr(int(digits, 16)))
                i += 6
                continue
            out.append(_STR_ESC.get(n, n))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _prefixed(value, prefixes: list):
    """`value` under the tags and discards read before it (innermost last)."""
    while prefixes:
        kind = prefixes.pop()
        if kind[0] == "discard":
            return _DISCARDED
        if not isinstance(value, dict):  # a record literal reads as its map
            value = Tagged(kind[1], value)
    return value


def _lines_at(text: str, positions: list[int]) -> list[int]:
    """The 1-based line of each of `positions` (in increasing order)."""
    lines, line, prev = [], 1, 0
    count = text.count
    for p in positions:
        line += count("\n", prev, p)
        prev = p
        lines.append(line)
    return lines


def parse_edn(text: str, source: str = "<edn>") -> list[tuple[int, object, list[int]]]:
    """Parse every top-level form; return (line, form, element_lines) triples, where
    element_lines, for a top-level vector or list, are the start lines of its elements
    (so an error in the k-th op of a history vector can name its line; empty for other
    forms). Errors name the line.

    One regex match per token, whitespace included; line numbers are counted only where
    they are asked for (from the positions kept), and atoms other than plain integers
    are read once per distinct text (all `:type :ok` share one Keyword). Where setup.sh
    built it, the compiled reader (_edn.c) reads the EDN histories are made of, ten
    times as fast, and leaves anything else, errors included, to this loop."""
    if _compiled is not None:
        forms = _compiled.parse(text, Keyword, Symbol, EdnSet)
        if forms is not None:
            return forms

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    starts: list[int] = []        # each top-level form's position
    values: list = []
    element_starts: list = []     # each top-level form's elements' positions, or None
    # Each open collection: [opener, items, position, element positions (depth 1 only)].
    # Tags and discards wait in `pending` (one list per depth) for the next whole form.
    stack: list[list] = []
    pending: list[list] = [[]]
    atoms: dict[str, object] = {}
    match = _TOKEN.match
    pos = 0
    while True:
        m = match(text, pos)
        if m is None:
            at = _SPACE.match(text, pos).end()
            raise HistoryError(f"{source}:{line_of(at)}: cannot read EDN near {text[at:at + 20]!r}")
        kind = m.lastindex
        pos = m.end()
        if kind == _ATOM:
            tok = m.group(_ATOM)
            if tok.isdecimal():   # what _INT reads as an int, and int() too
                value = int(tok)
            else:
                value = atoms.get(tok, _UNSEEN)
                if value is _UNSEEN:
                    value = atoms[tok] = _atom(tok)
        elif kind == _STR:
            try:
                value = _unescape(m.group(_STR)[1:-1])
            except ValueError as e:
                raise HistoryError(f"{source}:{line_of(m.start(_STR))}: {e}") from None
        elif kind == _OPEN:
            stack.append([m.group(_OPEN), [], m.start(_OPEN), None if stack else []])
            pending.append([])
            continue
        elif kind == _CLOSE:
            tok = m.group(_CLOSE)
            if not stack:
                raise HistoryError(f"{source}:{line_of(m.start(_CLOSE))}: unmatched {tok!r}")
            opener, items, opened, elements = stack.pop()
            pending.pop()
            if _CLOSER[opener] != tok:
                raise HistoryError(f"{source}:{line_of(m.start(_CLOSE))}: {opener!r} opened on line "
                                   f"{line_of(opened)} closed by {tok!r}")
            if opener == "[" or opener == "(":
                value = items
            elif opener == "#{":
                value = EdnSet(items)
            else:
                if len(items) % 2:
                    raise HistoryError(f"{source}:{line_of(opened)}: map with an odd number of forms")
                value = {_hashable(k): v for k, v in zip(items[::2], items[1::2])}
            at = opened
            if opener != "[" and opener != "(":
                elements = None
        elif kind == _END:
            break
        elif kind == _CHAR:
            value = _char(m.group(_CHAR)[1:])
        elif kind == _DISCARD:
            pending[-1].append(("discard",))
            continue
        else:
            pending[-1].append(("tag", m.group(_TAG)[1:]))
            continue
        if kind != _CLOSE:
            at, elements = m.start(kind), None
        # A whole form, starting at `at`: into the open collection, or a top-level form.
        if pending[-1]:
            value = _prefixed(value, pending[-1])
            if value is _DISCARDED:
                continue
        if stack:
            top = stack[-1]
            top[1].append(value)
            if top[3] is not None:
                top[3].append(at)
        else:
            starts.append(at)
            values.append(value)
            element_starts.append(elements)
    if stack:
        raise HistoryError(f"{source}:{line_of(stack[-1][2])}: {stack[-1][0]!r} is never closed")
    return [(line, value, _lines_at(text, elements) if elements else [])
            for line, value, elements in zip(_lines_at(text, starts), values, element_starts)]


def _hashable(k):
    """A map key as a dict can hold it: vectors and sets as tuples, maps as their sorted
    pairs (by their text where keys of different kinds do not compare)."""
    if isinstance(k, list):
        return tuple(_hashable(x) for x in k)
    if isinstance(k, dict):
        pairs = [(_hashable(a), _hashable(b)) for a, b in k.items()]
        try:
            return tuple(sorted(pairs))
        except TypeError:
            return tuple(sorted(pairs, key=repr))
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
