"""``sql_exec``: one SQLite query, judged by the rows it returns.

``completion`` is the query; ``test`` is JSON: ``{"fixture": "<SQL script creating and
filling tables>", "expected": [[row values...], ...], "ordered": bool}``. The query runs in
the sandbox against a fresh in-memory database built from the fixture (SQLite can write files
with ``ATTACH``, so it is untrusted like any program). It passes iff the rows equal
``expected``: as lists when ``ordered``, as multisets otherwise. The verdict comes through
the same nonce-checked channel as ``python_tests``.
"""

from __future__ import annotations

import json
import sqlite3

from kernel_lifecycle.boundary.sandbox import Job
from kernel_lifecycle.boundary.scorers.base import (
    HARNESS_REVISION,
    Sample,
    SampleFormatError,
    Scorer,
    Verdict,
    harness_verdict,
)

_SCALARS = (str, int, float, bool, type(None))

_PROGRAM = """\
import sqlite3
from collections import Counter
fixture = {fixture!r}
query = {query!r}
expected = [tuple(row) for row in {expected!r}]
con = sqlite3.connect(":memory:")
con.executescript(fixture)
rows = [tuple(row) for row in con.execute(query).fetchall()]
if {ordered!r}:
    assert rows == expected, "rows differ"
else:
    assert Counter(rows) == Counter(expected), "rows differ"
"""


def parse_test(sample: Sample) -> tuple[str, list[list[object]], bool]:
    """The fixture, expected rows and ordering of a sample's ``test``; SampleFormatError if bad."""
    where = f"sample {sample.task_id!r}: test must be JSON {{fixture, expected, ordered}}"
    try:
        spec = json.loads(sample.test)
    except json.JSONDecodeError as exc:
        raise SampleFormatError(f"{where}: {exc.msg} at character {exc.pos}") from exc
    if not isinstance(spec, dict):
        raise SampleFormatError(f"{where}: got {type(spec).__name__}")
    fixture, expected, ordered = spec.get("fixture"), spec.get("expected"), spec.get("ordered", False)
    if not isinstance(fixture, str):
        raise SampleFormatError(f"{where}: 'fixture' must be a string of SQL")
    if not isinstance(expected, list) or not all(
        isinstance(row, list) and all(isinstance(v, _SCALARS) for v in row) for row in expected
    ):
        raise SampleFormatError(f"{where}: 'expected' must be a list of rows of scalar values")
    if not isinstance(ordered, bool):
        raise SampleFormatError(f"{where}: 'ordered' must be true or false")
    return fixture, expected, ordered


class SqlExecScorer(Scorer):
    name = "sql_exec"
    language = "sql"
    program = True
    default_timeout = 3.0

    def version(self) -> str:
        return f"sql_exec r{HARNESS_REVISION}; sqlite {sqlite3.sqlite_version}; {self._limits_text()}"

    def score(self, samples: list[Sample], *, workers: int = 2, timeout: float | None = None) -> list[Verdict]:
        timeout = self.default_timeout if timeout is None else timeout
        specs = [parse_test(s) for s in samples]  # all or nothing: a bad spec is a data error
        jobs = {}
        for i, sample in enumerate(samples):
            if sample.completion.strip():
                fixture, expected, ordered = specs[i]
                source = _PROGRAM.format(fixture=fixture, query=sample.completion, expected=expected, ordered=ordered)
                jobs[i] = Job("python", timeout, source=source)
        return self._run_code(samples, jobs, harness_verdict, workers)
