"""Scorers by name: the arbiters of skills.

``get_scorer("python_tests")`` etc.; ``SCORERS`` lists the names. Each scorer judges a list
of ``Sample``s (HumanEval's shape) and returns one ``Verdict`` each, in order, running every
program in the sandbox (``kernel_lifecycle.boundary.sandbox``).
"""

from __future__ import annotations

from typing import Any

from kernel_lifecycle.boundary.scorers.base import (
    HARNESS_REVISION,
    Sample,
    SampleFormatError,
    Scorer,
    Verdict,
    read_samples,
)
from kernel_lifecycle.boundary.scorers.cobol_compile import CobolCompileScorer
from kernel_lifecycle.boundary.scorers.python_tests import PythonTestsScorer
from kernel_lifecycle.boundary.scorers.sql_exec import SqlExecScorer
from kernel_lifecycle.errors import NotFoundError

SCORERS: tuple[str, ...] = ("python_tests", "cobol_compile", "sql_exec")

__all__ = ["HARNESS_REVISION", "SCORERS", "Sample", "SampleFormatError", "Scorer", "Verdict", "get_scorer", "read_samples"]


def get_scorer(name: str, **options: Any) -> Scorer:
    """A new scorer instance; ``options`` (``mode``, ``limits``) go to its constructor."""
    if name == "python_tests":
        return PythonTestsScorer(**options)
    if name == "cobol_compile":
        return CobolCompileScorer(**options)
    if name == "sql_exec":
        return SqlExecScorer(**options)
    raise NotFoundError(f"unknown scorer {name!r}; known scorers: {', '.join(SCORERS)}")
