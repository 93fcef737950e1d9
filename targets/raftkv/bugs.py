"""raftkv's bug switches (BUGS.md says what each breaks and which fault reveals it)."""

BUGS = ("stale-reads", "no-fsync", "lease-reads", "early-ack", "no-term-check")
