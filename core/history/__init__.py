"""The history: the contract between the runner and the checkers (see ARCHITECTURE.md).

Op shape and retirement (`op`), pairing and validation (`pairing`), the JSON Lines
encoding (`jsonl`), Jepsen's EDN and log formats (`edn`, `jepsen_log`) and reading any of
them (`load`). Both the runner and the checkers import it from here.
"""
from .op import COMPLETIONS, NEMESIS, TYPES, History, HistoryError, is_client, retire
from .pairing import NO_PARTNER, Pairing, pair, validate
from .jsonl import HistoryWriter, iter_jsonl, iter_jsonl_lines, read_jsonl, read_op_at, write_jsonl
from .edn import read_edn_history, write_edn_history
from .load import load_history

__all__ = ["COMPLETIONS", "NEMESIS", "TYPES", "History", "HistoryError", "is_client", "retire",
           "NO_PARTNER", "Pairing", "pair", "validate",
           "HistoryWriter", "iter_jsonl", "iter_jsonl_lines", "read_jsonl", "read_op_at", "write_jsonl", "read_edn_history", "write_edn_history",
           "load_history"]
