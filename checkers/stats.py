"""How many ops of each kind succeeded, failed or are unknown (Jepsen's stats checker).

Invalid when some client function never once succeeded: a test where every write failed
proves nothing about safety, and saying "valid" would mislead.
"""
from __future__ import annotations


class StatsChecker:
    name = "stats"

    def check(self, history: list[dict], opts: dict) -> dict:
        by_f: dict[str, dict[str, int]] = {}
        for op in history:
            t = op.get("type")
            if t not in ("ok", "fail", "info") or op.get("process") == "nemesis":
                continue
            counts = by_f.setdefault(str(op.get("f")), {"ok": 0, "fail": 0, "info": 0})
            counts[t] += 1
        never_ok = sorted(f for f, c in by_f.items() if c["ok"] == 0)
        total = {k: sum(c[k] for c in by_f.values()) for k in ("ok", "fail", "info")}
        result = {"valid": not never_ok if by_f else "unknown", "count": sum(total.values()),
                  **{f"{k}_count": v for k, v in total.items()}, "by_f": by_f}
        if never_ok:
            result["never_succeeded"] = never_ok
        if not by_f:
            result["error"] = "no client operation completed"
        return result
