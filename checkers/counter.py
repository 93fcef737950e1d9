"""The counter checker: every read lies between what was surely and what was possibly added
(Jepsen's counter).

Ops, per key (Jepsen's independent tuples): `increment [k, delta]` with delta > 0, and
`read [k, None] -> [k, total]`, where a counter never incremented reads None or 0. A read
of key k must see at least the sum of the increments of k that completed `ok` before the
read was invoked (they certainly happened before it), and at most the sum of the
increments invoked before the read completed and not known to have failed (an `info`
increment may have happened; a `fail` certainly did not). A read outside those bounds is
impossible in any order of the operations: the counter lost an acknowledged increment or
counted one twice (or counted one that failed).

Why only bounds: a counter's reads could be checked for full linearizability, but with
many concurrent increments the search is exponential while the bounds are linear and
catch the failures counters have (lost and duplicated updates, stale reads).
"""
from __future__ import annotations

from core.history import is_client, pair

from .result import UNKNOWN, merge_valid


class CounterChecker:
    name = "counter"

    def __init__(self, add_f: str = "increment", read_f: str = "read"):
        self.add_f, self.read_f = add_f, read_f

    def check(self, history: list[dict], opts: dict) -> dict:
        pairing = pair(history)
        partner = pairing.partner
        # Sweep the history in order. At an op's position, `lower[k]` is the sum of
        # increments of k that completed ok so far; `upper[k]` the sum invoked so far
        # minus those that failed so far.
        lower: dict = {}
        upper: dict = {}
        read_floor: dict[int, int] = {}   # read invocation position -> its lower bound
        reads: dict = {}                  # key -> [(read index, value, lower, upper)]
        for i, op in enumerate(history):
            if not is_client(op):
                continue
            f, t, v = op.get("f"), op.get("type"), op.get("value")
            if f == self.add_f and isinstance(v, (list, tuple)) and len(v) == 2:
                k, delta = _key(v[0]), v[1]
                if t == "invoke":
                    upper[k] = upper.get(k, 0) + delta
                elif t == "ok":
                    lower[k] = lower.get(k, 0) + delta
                elif t == "fail":
                    upper[k] = upper.get(k, 0) - delta
            elif f == self.read_f and isinstance(v, (list, tuple)) and len(v) == 2:
                k = _key(v[0])
                if t == "invoke":
                    read_floor[i] = lower.get(k, 0)
                elif t == "ok":
                    j = partner[i]
                    floor = read_floor.get(j, 0) if j >= 0 else 0
                    reads.setdefault(k, []).append(
                        (op.get("index", i), v[1], floor, upper.get(k, 0)))
        keys = {k: _judge(rs) for k, rs in sorted(reads.items(), key=lambda kv: str(kv[0]))}
        out = {"valid": merge_valid(r["valid"] for r in keys.values()) if keys else UNKNOWN,
               "keys": keys}
        if not keys:
            out["error"] = "no successful read of any counter"
        bad = [f"key {k}: {r['explanation']}" for k, r in keys.items() if r["valid"] is False]
        if bad:
            out["explanation"] = "; ".join(bad)
        return out


def _judge(reads: list) -> dict:
    """One key's reads against their bounds."""
    errors = []
    for index, value, low, high in reads:
        seen = 0 if value is None else value
        if not isinstance(seen, int) or isinstance(seen, bool) or not low <= seen <= high:
            errors.append({"index": index, "read": value, "lower": low, "upper": high})
    result = {"valid": not errors, "reads": len(reads), "errors": errors}
    if errors:
        e = errors[0]
        seen = 0 if e["read"] is None else e["read"]
        why = ("below" if isinstance(seen, int) and seen < e["lower"]
               else "above" if isinstance(seen, int) else "outside")
        result["explanation"] = (
            f"{len(errors)} of {len(reads)} reads impossible; op {e['index']} read {e['read']}, "
            f"{why} the bounds [{e['lower']}, {e['upper']}]: at least {e['lower']} was "
            f"acknowledged before the read began and at most {e['upper']} could have been "
            f"added before it ended")
    return result


def _key(k):
    return str(k)
