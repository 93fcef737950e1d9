"""User-fixable errors: one family, at the bottom of the stack, so every layer raises the same.

Anything the user can fix (a malformed spec, history or flag; an unknown option; a workload
the target cannot run; a missing binary; an unreachable host; a cluster that never became
healthy) is a `UserError`: the command line prints its message as one line and exits 254.
Every other exception is a bug in tectonic (exit 255). The message must stand alone on one
line: say what is wrong, where (file, line, field, node) and, where it helps, what to do.
"""
from __future__ import annotations

BAD_INPUT = 254
INTERNAL = 255


class UserError(Exception):
    """Anything the user can fix: printed as one line, exit 254."""


class SpecError(UserError, ValueError):
    """A malformed spec or flag. The message says what is wrong and where, on one line."""


class HistoryError(UserError, ValueError):
    """A history that cannot be read or is malformed. The message names file and line."""


class SetupError(UserError):
    """The environment cannot run this test (a node unreachable, a target that will not
    start, a fault the backend cannot inject). One line for the user; exit 254."""
