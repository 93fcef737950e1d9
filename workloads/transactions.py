"""Random transactions over a sliding window of keys, shared by list-append and rw-register
(Elle's generators): each txn has 1..max_txn_length micro-ops on `active_keys` keys at a
time, and the window slides on as the test goes, so every key's version order stays short
(about `max_writes_per_key` writes) while threads still meet on the same keys.

Each thread slides its own window by its own count of transactions, so a thread's k-th
transaction depends on (seed, thread, k) alone and replays. Written values are unique per
key (Elle infers orders from them): they encode the thread, its transaction and the
micro-op's position."""
from __future__ import annotations

from harness import generator as gen


def txn_generator(write_mop: str, read_value, opts: dict, concurrency: int) -> gen.Gen:
    """A generator of `txn` ops. write_mop is "append" or "w"; read_value is what a read
    micro-op carries before the database fills it in."""
    active = int(opts.get("active_keys", 5))
    max_len = int(opts.get("max_txn_length", 4))
    max_writes = int(opts.get("max_writes_per_key", 32))
    concurrency = max(1, concurrency)
    # A key stays in a thread's window for active * slide transactions, which write it
    # slide * (max_len + 1) / 4 times on average (half the micro-ops are writes, spread
    # over the window): over all threads, about max_writes writes per key.
    slide = max(1, round(4 * max_writes / (concurrency * (max_len + 1))))

    def txn(thread, k, draws):
        base = k // slide
        serial = (k * concurrency + thread) * max_len
        mops = []
        for i in range(draws.randint(1, max_len)):
            key = base + draws.randrange(active)
            if draws.random() < 0.5:
                mops.append(["r", key, read_value])
            else:
                mops.append([write_mop, key, serial + i + 1])
        return {"f": "txn", "value": mops}

    return gen.per_thread(txn)
