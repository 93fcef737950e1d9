"""Running a test inside a private host (harness.control.userns.private_host_command):
fresh network, mount and PID namespaces with their own /run.

Tests that call a bare `clean()`, or that build hosts out of namespaces (the Dask lab), do
their work there: on this machine other tests may run real clusters at the same time, and a
bare clean must only ever see this test's own namespaces.

    def test_x():
        if not in_private_host():
            rerun_in_private_host(__file__, "test_x")
            return
        ...  # runs inside
"""
from __future__ import annotations

import os
import subprocess
import sys

from harness.control.userns import ENV_MARK, private_host_command, userns_problem

import pytest


def in_private_host() -> bool:
    return os.environ.get(ENV_MARK) == "1"


def rerun_in_private_host(test_file: str, test_name: str, timeout: float = 900) -> None:
    """Run one test function of test_file inside a private host; fail with its output."""
    problem = userns_problem()
    if problem:
        pytest.skip(f"no private host here: {problem}")
    argv = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-s",
            f"{test_file}::{test_name}"]
    proc = subprocess.run(private_host_command(argv), capture_output=True, text=True,
                          timeout=timeout, cwd=os.path.dirname(os.path.dirname(test_file)))
    assert proc.returncode == 0, f"inside the private host:\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"
