"""cobol_compile with the real cobc, sql_exec with real SQLite, both in the real sandbox."""

from __future__ import annotations

import json
import os

import pytest

from kernel_lifecycle.boundary.scorers import Sample, SampleFormatError, get_scorer
from kernel_lifecycle.boundary.scorers.cobol_compile import COBC_FLAGS, POSITIVE_CONTROL
from kernel_lifecycle.errors import ConfigurationError

GOOD = """IDENTIFICATION DIVISION.
PROGRAM-ID. SUMS.
DATA DIVISION.
WORKING-STORAGE SECTION.
01 A PIC 9(4) VALUE 12.
01 B PIC 9(4) VALUE 30.
01 C PIC 9(5).
PROCEDURE DIVISION.
    ADD A TO B GIVING C.
    DISPLAY "SUM " C.
    STOP RUN.
"""


def _c(task_id: str, program: str) -> Sample:
    return Sample(task_id=task_id, completion=program)


def test_cobol_verdicts() -> None:
    scorer = get_scorer("cobol_compile")
    samples = [
        _c("good", GOOD),
        _c("control", POSITIVE_CONTROL),
        _c("undeclared", GOOD.replace("ADD A TO B", "ADD A TO Z")),
        _c("syntax", GOOD.replace("STOP RUN.", "STOP RUN").replace("PROCEDURE DIVISION.", "PROCEDURE DIVISON.")),
        _c("empty", "   \n\n"),
        _c("prose", "Sure! Here is how you would add two numbers in COBOL."),
        _c("python", "def add(a, b):\n    return a + b\n"),
    ]
    verdicts = {v.task_id: v for v in scorer.score(samples)}
    assert verdicts["good"].passed and verdicts["good"].result == "compiled"
    assert verdicts["control"].passed
    for name in ("undeclared", "syntax"):
        v = verdicts[name]
        assert not v.passed and not v.no_code
        assert v.result.startswith("did not compile: prog.cob:") and "error" in v.result, v.result
    assert "'Z'" in verdicts["undeclared"].result
    for name in ("empty", "prose", "python"):
        assert verdicts[name].no_code and verdicts[name].result == "no code" and not verdicts[name].passed


def test_cobol_version_names_compiler_and_flags() -> None:
    version = get_scorer("cobol_compile").version()
    assert "GnuCOBOL" in version and " ".join(COBC_FLAGS) in version


def test_cobol_positive_control_failure_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from kernel_lifecycle.boundary.scorers import cobol_compile

    # a control that is not COBOL: what a broken cobc would make of the real one
    monkeypatch.setattr(cobol_compile, "POSITIVE_CONTROL", "IDENTIFICATION DIVISION.\nNOT COBOL AT ALL.\n")
    with pytest.raises(ConfigurationError, match="positive control"):
        get_scorer("cobol_compile").score([_c("good", GOOD)])


FIXTURE = """
CREATE TABLE staff (id INTEGER PRIMARY KEY, name TEXT, dept TEXT, salary REAL);
INSERT INTO staff VALUES (1, 'ada', 'eng', 120.5), (2, 'bob', 'ops', 80), (3, 'cy', 'eng', 99);
"""


def _q(task_id: str, query: str, expected: list, ordered: bool) -> Sample:
    test = json.dumps({"fixture": FIXTURE, "expected": expected, "ordered": ordered})
    return Sample(task_id=task_id, completion=query, test=test)


def test_sql_verdicts() -> None:
    eng_sorted = [["ada", 120.5], ["cy", 99]]
    samples = [
        _q("right", "SELECT name, salary FROM staff WHERE dept = 'eng' ORDER BY salary DESC;", eng_sorted, True),
        _q("right_any_order", "SELECT name, salary FROM staff WHERE dept = 'eng' ORDER BY name DESC",
           eng_sorted, False),
        _q("wrong_order", "SELECT name, salary FROM staff WHERE dept = 'eng' ORDER BY salary ASC", eng_sorted, True),
        _q("wrong_rows", "SELECT name, salary FROM staff", eng_sorted, False),
        _q("count", "SELECT dept, COUNT(*) FROM staff GROUP BY dept ORDER BY dept", [["eng", 2], ["ops", 1]], True),
        _q("bad_sql", "SELEC name FROM staff", eng_sorted, False),
        _q("two_statements", "DELETE FROM staff; SELECT name, salary FROM staff", [], False),
        _q("empty", "  ", [], False),
        _q("attach", "ATTACH DATABASE '/tmp/escape.db' AS x", [], False),
    ]
    verdicts = {v.task_id: v for v in get_scorer("sql_exec").score(samples)}
    assert verdicts["right"].passed and verdicts["right_any_order"].passed and verdicts["count"].passed
    assert verdicts["wrong_order"].result == "failed: AssertionError"
    assert verdicts["wrong_rows"].result == "failed: AssertionError"
    assert verdicts["bad_sql"].result == "failed: OperationalError"
    assert verdicts["two_statements"].result == "failed: ProgrammingError"
    assert verdicts["empty"].no_code and not verdicts["empty"].passed
    # ATTACH would create a file: the sandbox's /tmp is private and not writable by the program
    assert verdicts["attach"].result == "failed: OperationalError"
    assert not os.path.exists("/tmp/escape.db")


def test_sql_bad_test_spec_names_the_sample() -> None:
    bad = Sample(task_id="q1", completion="SELECT 1", test='{"fixture": "", "expected": "nope"}')
    with pytest.raises(SampleFormatError, match="q1.*expected"):
        get_scorer("sql_exec").score([bad])
    with pytest.raises(SampleFormatError, match="q1"):
        get_scorer("sql_exec").score([Sample(task_id="q1", completion="SELECT 1", test="not json")])
