"""Linearizability: the WGL search with a cache of configurations, per key
(P-compositionality), against small sequential models; explanations in text and HTML.

    from checkers.linearizable import LinearizableChecker
    result = LinearizableChecker("cas-register", initial=0).check(history, {"out_dir": d})

Works on a list of op dicts alone (see ARCHITECTURE.md, "The history").
"""
from .checker import LinearizableChecker
from .explain import explain_text
from .models import FAILED, MODELS, UNKNOWN, Model, make_model

__all__ = ["LinearizableChecker", "MODELS", "explain_text", "Model", "make_model", "UNKNOWN", "FAILED"]
