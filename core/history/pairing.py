"""Pairing invocations with completions: the one implementation every reader of a history uses.

The rule (Jepsen's): a process has at most one op open; its invocation is completed by
the next ok / fail / info of the same process. Pairs are positions in the list, never
`index` fields (those may be sparse in foreign files) and never `time`.

What each shape means, decided once for the runner, the report and every checker:

- A process that invokes while its previous op is still open breaks the rule: which
  completion belongs to which invocation is then a guess, and a wrong guess moves an op's
  interval, which can invent an anomaly or hide one. It is a `HistoryError` naming both
  lines, never a silent choice. (Jepsen's interpreter cannot produce it; tectonic's runner
  cannot either, because it retires a process after `info`, see `core.history.op.retire`.)
- A completion without an open invocation of its process stands alone: it was invoked at
  some unknown time before it. Nemesis reports are lone `info`s, and Elle's own test
  histories are often completions only. Its partner is NO_PARTNER; readers that need an
  invocation time take the widest interval (invoked before everything), which assumes the
  least and so cannot invent an anomaly.
- An invocation never completed is open: it may take effect at any time after it, or never.
  Its partner is NO_PARTNER too; its type says which case it is.
- An op that is not a map, has an unknown `type` or an unhashable `process` is a
  `HistoryError` naming its line.

A process that got `info` may invoke again in a foreign history: pairing is still
unambiguous, and since an `info` op's completion is never taken as the moment it took
effect, readers stay sound without the runner's retirement rule.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterator

from .op import TYPES, History, HistoryError

NO_PARTNER = -1


class Pairing:
    """The partner of every op of a history, as list positions.

    `partner[i]` is, for an invocation, the position of its completion; for a completion,
    the position of its invocation; NO_PARTNER for an invocation never completed and for a
    lone completion. Compact (one machine word per op): a million-op history pairs in a
    few megabytes.
    """

    __slots__ = ("history", "partner")

    def __init__(self, history: list[dict], partner: array):
        self.history = history
        self.partner = partner

    def invocations(self) -> Iterator[tuple[int, int | None]]:
        """(invocation position, completion position or None), in invocation order."""
        partner, history = self.partner, self.history
        for i, op in enumerate(history):
            if op["type"] == "invoke":
                j = partner[i]
                yield i, (j if j != NO_PARTNER else None)

    def completions(self) -> Iterator[tuple[int | None, int]]:
        """(invocation position or None, completion position), in completion order."""
        partner, history = self.partner, self.history
        for j, op in enumerate(history):
            if op["type"] != "invoke":
                i = partner[j]
                yield (i if i != NO_PARTNER else None), j


def pair(history: list[dict]) -> Pairing:
    """Pair every op of `history` (module docstring: the rule and what each shape means).

    Raises HistoryError naming the line of the first malformed op."""
    where = history.where if isinstance(history, History) else _position
    partner = array("q", bytes(8 * len(history)))
    open_by_process: dict = {}
    types = TYPES
    for i, op in enumerate(history):
        if type(op) is not dict and not isinstance(op, dict):
            raise HistoryError(f"{where(i)}: an op must be a map, got {type(op).__name__}")
        t = op.get("type")
        if t not in types:
            raise HistoryError(f"{where(i)}: unknown op type {t!r} (expected one of {', '.join(TYPES)})")
        p = op.get("process")
        try:
            j = open_by_process.pop(p, NO_PARTNER)
            if t == "invoke" and j == NO_PARTNER:
                # here too: popping from an empty dict never hashes the key
                open_by_process[p] = i
        except TypeError:
            raise HistoryError(f"{where(i)}: process must be an integer or \"nemesis\", got {p!r}") from None
        if t == "invoke":
            if j != NO_PARTNER:
                raise HistoryError(f"{where(i)}: process {p} invokes {op.get('f')!r} while its op at "
                                   f"{where(j)} is still open (a process has at most one open op)")
            partner[i] = NO_PARTNER
        else:
            partner[i] = j
            if j != NO_PARTNER:
                partner[j] = i
    return Pairing(history, partner)


def validate(history: list[dict]) -> None:
    """Raise HistoryError naming the line of the first op that breaks the pairing rule."""
    pair(history)


def _position(i: int) -> str:
    return f"op {i}"
