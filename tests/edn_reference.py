"""The EDN reader's loop as it was before it was made fast (a token per match, a line
count per token): kept only as the reference tests/test_edn_reader.py holds the fast
one to, on every input, errors included. Its helpers are the module's own."""
import re

from core.history.edn import _CHARS, _CLOSER, EdnSet, Tagged, _atom, _hashable, _unescape
from core.history.op import HistoryError

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


def reference_parse_edn(text: str, source: str = "<edn>") -> list[tuple[int, object, list[int]]]:
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
