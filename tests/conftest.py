import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT.parent / "shared" / "conformance"


@pytest.fixture
def conformance() -> pathlib.Path:
    """../shared/conformance, or a clean skip when the corpus is not beside the project."""
    if not CONFORMANCE.is_dir():
        pytest.skip(f"conformance corpus not found at {CONFORMANCE}")
    return CONFORMANCE


def conformance_files(pattern: str) -> list[pathlib.Path]:
    """For parametrizing: the corpus files matching pattern (empty when it is absent)."""
    return sorted(CONFORMANCE.glob(pattern)) if CONFORMANCE.is_dir() else []


def needs_root(reason: str = "needs root for namespaces and iptables"):
    return pytest.mark.skipif(os.geteuid() != 0, reason=reason)
