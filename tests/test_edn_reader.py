"""The fast EDN reader against the loop it replaced (tests/edn_reference.py): the same
forms, of the same types, on the same lines, and the same one-line errors, on the
corpus's histories, on generated EDN of every kind of form and separator, and on
generated EDN with a character cut out or thrown in."""
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.history import HistoryError, write_edn_history
from core.history import edn
from core.history.edn import EdnSet, Keyword, Symbol, Tagged, parse_edn
from tests.conftest import conformance_files
from tests.edn_reference import reference_parse_edn


def typed(x):
    """x with every value's type spelled out, so a Keyword read as a str is a difference."""
    if isinstance(x, dict):
        return ("map", sorted(((repr(typed(k)), typed(v)) for k, v in x.items())))
    if isinstance(x, Tagged):
        return ("tagged", x.tag, typed(x.value))
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [typed(v) for v in x])
    return (type(x).__name__, x)


def outcome(parse, text):
    try:
        forms = parse(text, source="h.edn")
    except HistoryError as e:
        return "error", str(e)
    # element lines are given for a top-level vector or list (the history as one vector)
    return [(line, typed(value), lines if type(value) is list else None)
            for line, value, lines in forms]


def python_parse_edn(text, source):
    """parse_edn without the compiled reader: the Python loop alone."""
    compiled, edn._compiled = edn._compiled, None
    try:
        return parse_edn(text, source)
    finally:
        edn._compiled = compiled


def agree(text):
    """The compiled reader (where built, else the loop), the loop alone and the old loop
    give the same outcome."""
    fast, python = outcome(parse_edn, text), outcome(python_parse_edn, text)
    assert fast == python, text[:400]
    try:
        reference = outcome(reference_parse_edn, text)
    except ValueError as e:   # the old loop let a bad \u escape out as a traceback
        assert fast[0] == "error" and "bad escape" in fast[1] and str(e) in fast[1], (fast, text)
        return fast
    assert fast == reference, text[:400]
    return fast


needs_compiled = pytest.mark.skipif(edn._compiled is None, reason="core/history/_edn.c is not built (./setup.sh)")


@needs_compiled
@pytest.mark.parametrize("path", conformance_files("knossos/**/*.edn") + conformance_files("elle/histories/*.edn"),
                         ids=lambda p: p.name)
def test_the_compiled_reader_takes_the_corpus_as_the_loop_reads_it(path):
    text = path.read_text(encoding="utf-8")
    forms = edn._compiled.parse(text, Keyword, Symbol, EdnSet)
    assert forms is not None
    assert [(line, typed(v), lines) for line, v, lines in forms] == \
        [(line, typed(v), lines) for line, v, lines in python_parse_edn(text, "x")]


@needs_compiled
def test_the_compiled_reader_takes_what_we_write_and_gives_up_on_the_rest(tmp_path):
    ops = [{"index": 0, "type": "invoke", "process": 3, "f": "txn", "time": -2 ** 70,
            "value": [["append", "k", 1], ["r", "k", None]], "note": 'a "q"\n\tb', "x": 1.5e-3},
           {"index": 1, "type": "ok", "process": "nemesis", "f": "start", "value": {"n1": ["n2"]}}]
    write_edn_history(ops, str(tmp_path / "h.edn"))
    text = (tmp_path / "h.edn").read_text()
    forms = edn._compiled.parse(text, Keyword, Symbol, EdnSet)
    assert [f for _, f, _ in forms] == [f for _, f, _ in python_parse_edn(text, "x")]
    for outside in ["#tag 1", "#_ 1", "\\c", '"\\u0041"', "7N", "1/2", "{[1] 2}", "[1", "(1]",
                    "{:a}", '"open', "[1 2]]", "é", "\f", "[" * 300 + "]" * 300, '"a\\\nb"']:
        assert edn._compiled.parse(outside, Keyword, Symbol, EdnSet) is None, outside


@pytest.mark.parametrize("path", conformance_files("knossos/**/*.edn") + conformance_files("elle/histories/*.edn"),
                         ids=lambda p: p.name)
def test_the_corpus_reads_as_before(path):
    text = path.read_text(encoding="utf-8")
    if len(text) > 1_000_000:   # the reference takes seconds: a stretch of whole lines
        text = text[:text.index("\n", 300_000) + 1] if "\n" in text[300_000:] else text
    forms = agree(text)
    assert forms != [] and forms[0] != "error"


# ---- generated EDN ------------------------------------------------------------------

SEPARATORS = [" ", ",", "\n", ", ", " ;; a comment\n", "\t", "\r\n", "  \n  "]
ATOMS = ["nil", "true", "false", ":ok", ":jepsen.history/op", "7", "-3", "+4", "12N", "3.5",
         "-0.25e3", "1.5M", "1/4", "sym", "a.b/c", "٣", "1_0", "x'", "#1", "##Inf",
         '"s"', '"with \\"quotes\\" and \\n \\u00e9"', '""', "\\a", "\\newline", "\\u0041", "\\,"]


# What the compiled reader takes: no tags, discards, characters, \u, N, M or ratios.
PLAIN_ATOMS = ["nil", "true", "false", ":ok", ":", ":a/b", "7", "-3", "+4", "0012", "-", "+",
               "12345678901234567890123", "3.5", "-0.25e3", "1E5", "2.", "sym", "a.b/c", "x'",
               "a#b", ".5", '"s"', '"with \\"quotes\\" and \\n \\t é"', '""', '"two\nlines"']


def forms(depth: int, atoms=ATOMS, plain=False):
    atom = st.sampled_from(atoms)
    if depth == 0:
        return atom
    inner = st.lists(forms(depth - 1, atoms, plain), max_size=5)
    keys = atom if plain else forms(depth - 1, atoms, plain)
    kinds = [
        atom,
        inner.map(lambda xs: ("[", xs, "]")),
        inner.map(lambda xs: ("(", xs, ")")),
        inner.map(lambda xs: ("#{", xs, "}")),
        st.lists(st.tuples(keys, forms(depth - 1, atoms, plain)), max_size=3).map(
            lambda kv: ("{", [x for pair in kv for x in pair], "}")),
    ]
    if not plain:
        kinds += [forms(depth - 1, atoms, plain).map(lambda x: ("#_", [x], "")),
                  forms(depth - 1, atoms, plain).map(lambda x: ("#my/tag", [x], ""))]
    return st.one_of(*kinds)


def render(form, rng: random.Random) -> str:
    if isinstance(form, str):
        return form
    opener, items, closer = form
    sep = rng.choice(SEPARATORS)
    body = sep.join(render(x, rng) for x in items)
    gap = " " if opener.startswith("#") and not opener.endswith("{") else rng.choice(["", " ", "\n"])
    return opener + gap + body + closer


@settings(max_examples=300, deadline=None)
@given(st.lists(forms(3), min_size=1, max_size=6), st.integers(0, 2**32))
def test_generated_edn_reads_as_before(tops, seed):
    rng = random.Random(seed)
    agree(rng.choice(["", "\n", " ; first\n"]) + "\n".join(render(f, rng) for f in tops))


def damaged(tops, seed: int, alphabet: str) -> str:
    """The forms rendered, then one character cut out or one of `alphabet` thrown in."""
    rng = random.Random(seed)
    text = "\n".join(render(f, rng) for f in tops)
    at = rng.randrange(len(text) + 1)
    if rng.random() < 0.5 and text:
        return text[:at] + text[at + 1:]
    return text[:at] + rng.choice(alphabet) + text[at:]


@settings(max_examples=400, deadline=None)
@given(st.lists(forms(3), min_size=1, max_size=4), st.integers(0, 2**32))
def test_generated_edn_with_a_character_cut_or_added_reads_or_fails_as_before(tops, seed):
    agree(damaged(tops, seed, '[]{}()#_;"\\, \n:x1'))


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(st.lists(forms(3, PLAIN_ATOMS, plain=True), min_size=1, max_size=6), st.integers(0, 2**32))
def test_generated_plain_edn_is_read_by_the_compiled_reader_as_before(tops, seed):
    rng = random.Random(seed)
    text = "\n".join(render(f, rng) for f in tops)
    assert edn._compiled.parse(text, Keyword, Symbol, EdnSet) is not None, text
    agree(text)


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(st.lists(forms(3, PLAIN_ATOMS, plain=True), min_size=1, max_size=4), st.integers(0, 2**32))
def test_generated_plain_edn_with_a_character_cut_or_added_reads_or_fails_as_before(tops, seed):
    agree(damaged(tops, seed, '[]{}()#_;"\\, \n:x1.e-'))


@pytest.mark.parametrize("text", [
    "{:a 1}\n{:b 2\n",                 # never closed
    "[1 2)\n",                         # closed by the wrong bracket
    "\n\n]",                           # unmatched
    "{:a 1 :b}",                       # odd map
    '[1 2]\n  "unterminated',          # cannot read
    " " * 50_000 + '"',                # after a long run of spaces: no regex blow-up
    '\n"\\u12"', '"\\u00zz"',              # bad escapes: an error naming the line
    ";" * 5_000 + "\n" + "\\",
    "#_ #_ 1 2 3", "#tag #_ 1 2", "[#_]", "#_", "#foo {:a 1}", "[\n1\n\n2 [3\n4]]",
])
def test_odd_inputs_read_or_fail_as_before(text):
    agree(text)


def test_values_keep_their_kinds():
    [(line, value, lines)] = parse_edn('\n[{:f :read, :value nil} sym #{1} #x 2 "s"]')
    assert line == 2 and lines == [2, 2, 2, 2, 2]
    op, sym, edn_set, tagged, s = value
    assert type(next(iter(op))) is Keyword and type(op["f"]) is Keyword and op["value"] is None
    assert type(sym) is Symbol and type(edn_set) is EdnSet and tagged == Tagged("x", 2) and s == "s"


@pytest.mark.parametrize("text", ["{#my/tag {:a 1} 2}", "{{:a [1 2]} 3}", "{{1 :x, :k 2} 3}", "{#{[1] {:m 1}} 4}"])
def test_any_form_may_be_a_map_key(text):
    [(_, value, _)] = parse_edn(text)
    assert list(value.values()) == [int(text[-2])]
