"""The history: the contract between the runner and the checkers (see ARCHITECTURE.md)."""
from .op import COMPLETIONS, NEMESIS, TYPES, History, HistoryError, is_client
from .jsonl import HistoryWriter, read_jsonl, write_jsonl
from .edn import read_edn_history, write_edn_history
from .pairing import completions, pair_indices, validate
from .load import load_history

__all__ = ["COMPLETIONS", "NEMESIS", "TYPES", "History", "HistoryError", "is_client",
           "HistoryWriter", "read_jsonl", "write_jsonl", "read_edn_history", "write_edn_history",
           "completions", "pair_indices", "validate", "load_history"]
