"""Random transactions over a rolling window of keys, shared by list-append and rw-register
(Elle's generators): each txn has 1..max_txn_length micro-ops on `active_keys` keys at a
time; a key is retired after `max_writes_per_key` writes, so version orders stay short."""
from __future__ import annotations


def txn_generator(write_mop: str, read_value, opts: dict):
    """A function generator of `txn` ops. write_mop is "append" or "w"."""
    active = int(opts.get("active_keys", 5))
    max_len = int(opts.get("max_txn_length", 4))
    max_writes = int(opts.get("max_writes_per_key", 32))
    keys = list(range(active))
    writes = dict.fromkeys(keys, 0)
    next_key = [active]
    next_value = {}

    def txn(ctx):
        rng = ctx.rng
        mops = []
        for _ in range(rng.randint(1, max_len)):
            i = rng.randrange(len(keys))
            k = keys[i]
            if rng.random() < 0.5:
                mops.append(["r", k, read_value])
                continue
            v = next_value.get(k, 0) + 1
            next_value[k] = v
            mops.append([write_mop, k, v])
            writes[k] += 1
            if writes[k] >= max_writes:
                del writes[k]
                keys[i] = next_key[0]
                writes[next_key[0]] = 0
                next_key[0] += 1
        return {"f": "txn", "value": mops}

    return txn
