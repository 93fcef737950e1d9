"""The bank checker: every read of all accounts sees the same total, and no account below
zero (Jepsen's bank).

Ops: `open-accounts [[account, balance], ...]` once, before anything else; `transfer
{"from": a, "to": b, "amount": n}`, a transaction that moves n from a to b; and
`read-balances [[account, None], ...] -> [[account, balance], ...]`, a transaction that
reads every account. Transfers move money and never make or destroy it, so in a
serializable store every read sees the total the accounts were opened with. A read that
sees another total observed a transfer half done (or a lost or doubled one); a read with
an account missing (None) saw the accounts before they existed or after one vanished; a
negative balance means a transfer was allowed to overdraw (unless the test allows it,
`negative_balances=True`).

Only `ok` reads are judged: a read that failed or timed out tells nothing.
"""
from __future__ import annotations

from core.history import is_client

from .result import UNKNOWN


class BankChecker:
    name = "bank"

    def __init__(self, negative_balances: bool = False):
        self.negative_balances = negative_balances

    def check(self, history: list[dict], opts: dict) -> dict:
        opened = None
        reads = []
        for i, op in enumerate(history):
            if not is_client(op) or op.get("type") != "ok":
                continue
            if op.get("f") == "open-accounts":
                opened = dict(_pairs(op.get("value")))
            elif op.get("f") == "read-balances":
                reads.append((op.get("index", i), dict(_pairs(op.get("value")))))
        if opened is None:
            return {"valid": UNKNOWN, "reads": len(reads),
                    "error": "the accounts were never opened (no ok open-accounts op)"}
        total = sum(opened.values())
        errors = [e for e in (self._judge(index, balances, opened, total)
                              for index, balances in reads) if e]
        out = {"valid": not errors if reads else UNKNOWN, "total": total, "accounts": len(opened),
               "reads": len(reads), "errors": errors}
        if not reads:
            out["error"] = "no successful read of the balances"
        if errors:
            kinds = sorted({e["kind"] for e in errors})
            out["explanation"] = (f"{len(errors)} of {len(reads)} reads impossible "
                                  f"({', '.join(kinds)}); first: {errors[0]['explanation']}")
        return out

    def _judge(self, index, balances: dict, opened: dict, total: int) -> dict | None:
        missing = sorted((a for a in opened if balances.get(a) is None), key=str)
        if missing:
            return {"index": index, "kind": "missing-account", "accounts": missing,
                    "explanation": f"op {index} read no balance for account(s) {missing}"}
        garbled = sorted((a for a, b in balances.items()
                          if not isinstance(b, int) or isinstance(b, bool)), key=str)
        if garbled:
            return {"index": index, "kind": "not-a-number", "accounts": garbled,
                    "explanation": f"op {index} read balances that are not integers ({_show(balances)})"}
        unexpected = sorted((a for a in balances if a not in opened), key=str)
        if unexpected:
            return {"index": index, "kind": "unexpected-account", "accounts": unexpected,
                    "explanation": f"op {index} read account(s) {unexpected} that were never opened"}
        seen = sum(balances.values())
        if seen != total:
            return {"index": index, "kind": "wrong-total", "total": seen,
                    "explanation": f"op {index} read balances summing to {seen}, not {total} "
                                   f"({_show(balances)})"}
        negative = sorted((a for a, b in balances.items() if b < 0), key=str)
        if negative and not self.negative_balances:
            return {"index": index, "kind": "negative-balance", "accounts": negative,
                    "explanation": f"op {index} read negative balance(s) ({_show(balances)})"}
        return None


def _pairs(value) -> list:
    """[[account, balance], ...] as (account, balance) pairs; JSON keeps accounts as given."""
    if not isinstance(value, (list, tuple)):
        return []
    return [(p[0], p[1]) for p in value if isinstance(p, (list, tuple)) and len(p) == 2]


def _show(balances: dict) -> str:
    return ", ".join(f"{a}: {b}" for a, b in sorted(balances.items(), key=lambda ab: str(ab[0])))
