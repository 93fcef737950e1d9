"""A bank (Jepsen's): money moves between accounts in transactions, and every read of all
the accounts must see the same total and no negative balance (checkers/bank.py).

The accounts are opened first, each with the same balance; then each thread transfers a
random amount between two random accounts or reads every balance; after the cluster
healed, every thread reads the balances once more. A transfer that would overdraw its
source fails without a change (the client checks the balance inside the transaction).

workload_opts: accounts (default 5), balance (each account's opening balance, default 10),
max_transfer (default 5).
"""
from __future__ import annotations

from harness import generator as gen

from . import Workload


def make_workload(spec: dict) -> Workload:
    from checkers.bank import BankChecker

    opts = spec.get("workload_opts") or {}
    accounts = list(range(int(opts.get("accounts", 5))))
    balance = int(opts.get("balance", 10))
    most = int(opts.get("max_transfer", 5))
    read = {"f": "read-balances", "value": [[a, None] for a in accounts]}

    def op(thread, k, draws):
        if draws.random() < 0.5:
            return read
        source = draws.choice(accounts)
        dest = draws.choice([a for a in accounts if a != source])
        return {"f": "transfer", "value": {"from": source, "to": dest,
                                           "amount": draws.randint(1, most)}}

    ops = gen.phases({"f": "open-accounts", "value": [[a, balance] for a in accounts]},
                     gen.per_thread(op))
    return Workload("bank", ops, {"bank": BankChecker()},
                    final_generator=gen.clients(gen.each_thread(read)), needs={"bank"})
