"""One exception type for every user-facing problem.

Why: the CLI turns a ``PCLError`` into a single line on stderr and exit code 2, so every bad
input (missing folder, corrupt image, unknown protocol, wrong checkpoint keys) reaches the user
as one actionable sentence instead of a traceback.  Messages must name the file, key or value
and say what to do.
"""

from __future__ import annotations


class PCLError(Exception):
    """A problem with the user's input or environment, reported as one line (exit code 2)."""

    exit_code: int = 2
