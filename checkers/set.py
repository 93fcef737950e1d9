"""The set checker: every acknowledged add must be in the final read (Jepsen's set).

Ops: `add [k, e]` and `read-list [k, None] -> [k, [elements]]`. For each key the last
successful read is the final state (the workload issues final reads after healing and
recovery). An element whose add was acknowledged but is absent is *lost*; an element
that was never added is *unexpected*; elements whose add is unknown (info) may be either
way. Without a successful final read for a key the verdict is unknown for that key.
"""
from __future__ import annotations

from .result import UNKNOWN, merge_valid


class SetChecker:
    name = "set"

    def __init__(self, add_f: str = "add", read_f: str = "read-list"):
        self.add_f, self.read_f = add_f, read_f

    def check(self, history: list[dict], opts: dict) -> dict:
        attempted: dict = {}
        acked: dict = {}
        final: dict = {}
        add_index: dict = {}   # (key, element) -> the add's invocation index
        read_index: dict = {}  # key -> the final read's index
        for op in history:
            f, t, v = op.get("f"), op.get("type"), op.get("value")
            if op.get("process") == "nemesis" or not isinstance(v, (list, tuple)) or len(v) != 2:
                continue
            k = _key(v[0])
            if f == self.add_f:
                if t == "invoke":
                    attempted.setdefault(k, set()).add(v[1])
                    add_index.setdefault((k, v[1]), op.get("index"))
                elif t == "ok":
                    acked.setdefault(k, set()).add(v[1])
            elif f == self.read_f and t == "ok" and isinstance(v[1], (list, tuple)):
                final[k] = list(v[1])
                read_index[k] = op.get("index")
        keys = {}
        for k in sorted(set(attempted) | set(final), key=str):
            if k not in final:
                keys[k] = {"valid": UNKNOWN, "error": "no successful final read"}
                continue
            read = final[k]
            seen = set(read)
            lost = sorted(acked.get(k, set()) - seen, key=str)
            unexpected = sorted(seen - attempted.get(k, set()), key=str)
            dups = sorted({e for e in read if read.count(e) > 1}, key=str) if len(seen) != len(read) else []
            r = {"valid": not (lost or unexpected), "acknowledged": len(acked.get(k, ())),
                 "attempted": len(attempted.get(k, ())), "read": len(read),
                 "lost": lost, "unexpected": unexpected}
            if dups:
                r["duplicated"] = dups
            keys[k] = r
        valid = merge_valid(r["valid"] for r in keys.values()) if keys else UNKNOWN
        lost_all = {k: r["lost"] for k, r in keys.items() if r.get("lost")}
        out = {"valid": valid, "keys": keys}
        # The lost adds, and the final reads that showed what was never added.
        blamed = [add_index[(k, e)] for k, r in keys.items() for e in r.get("lost") or ()]
        blamed += [read_index[k] for k, r in keys.items() if r.get("unexpected")]
        if blamed:
            out["blamed"] = blamed
        if lost_all:
            out["lost"] = lost_all
            out["explanation"] = "; ".join(
                f"key {k}: {len(v)} acknowledged add(s) missing from the final read, e.g. {v[:5]}"
                for k, v in lost_all.items())
        return out


def _key(k):
    return str(k)
