"""`kernel-lifecycle boundary score` end to end: the installed console script in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROMPT = "def add(a, b):\n"
TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("kernel-lifecycle")
    argv = [exe] if exe else [sys.executable, "-c", "from kernel_lifecycle.cli.app import main; main()"]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _row(task_id: str, completion: str, **extra: object) -> dict[str, object]:
    return {"task_id": task_id, "prompt": PROMPT, "completion": completion, "test": TEST, "entry_point": "add",
            **extra}


def test_score_writes_verdict_lines_and_a_summary(tmp_path: Path) -> None:
    samples = _write(tmp_path / "s.jsonl", [
        _row("a/0", "    return a + b\n", completion_id=3, model="x"),
        "",
        _row("a/1", "    return a - b\n"),
        _row("a/2", "    return 0\nimport sys\nsys.exit(0)\n"),
    ])
    done = _cli("boundary", "score", "--scorer", "python_tests", str(samples))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines == [
        {"task_id": "a/0", "passed": True, "result": "passed"},
        {"task_id": "a/1", "passed": False, "result": "failed: AssertionError"},
        {"task_id": "a/2", "passed": False, "result": "failed: SystemExit"},
    ]
    assert "n=3 passed=1 rate=0.333 no_code=0" in done.stderr

    out = tmp_path / "verdicts.jsonl"
    done = _cli("boundary", "score", "--scorer", "python_tests", str(samples), "--out", str(out), "--workers", "1")
    assert done.returncode == 0 and done.stdout == ""
    assert [json.loads(line)["passed"] for line in out.read_text().splitlines()] == [True, False, False]


def test_score_cobol_counts_no_code(tmp_path: Path) -> None:
    program = "IDENTIFICATION DIVISION.\nPROGRAM-ID. HI.\nPROCEDURE DIVISION.\n    DISPLAY 'HI'.\n    STOP RUN.\n"
    samples = _write(tmp_path / "c.jsonl", [{"task_id": "c/0", "completion": program},
                                            {"task_id": "c/1", "completion": ""}])
    done = _cli("boundary", "score", "--scorer", "cobol_compile", str(samples))
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["result"] for line in done.stdout.splitlines()] == ["compiled", "no code"]
    assert "no_code=1" in done.stderr


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([_row("a/0", "    return a + b\n"), "{not json"], r"s\.jsonl:2: not a JSON object"),
        ([_row("a/0", "    return a + b\n"), "", {"task_id": "a/1", "prompt": PROMPT}],
         r"s\.jsonl:3: missing 'completion'"),
        (["[1, 2]"], r"s\.jsonl:1: not a JSON object"),
    ],
)
def test_bad_input_is_one_line_naming_file_and_line(tmp_path: Path, rows: list[object], message: str) -> None:
    import re

    samples = _write(tmp_path / "s.jsonl", rows)
    done = _cli("boundary", "score", "--scorer", "python_tests", str(samples))
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: ") and re.search(message, done.stderr), done.stderr


def test_missing_file_unknown_scorer_and_missing_bwrap(tmp_path: Path) -> None:
    done = _cli("boundary", "score", "--scorer", "python_tests", str(tmp_path / "nope.jsonl"))
    assert done.returncode == 1 and "nope.jsonl not found" in done.stderr

    samples = _write(tmp_path / "s.jsonl", [_row("a/0", "    return a + b\n")])
    done = _cli("boundary", "score", "--scorer", "rust_tests", str(samples))
    assert done.returncode == 1 and "known scorers: python_tests, cobol_compile, sql_exec" in done.stderr

    exe = shutil.which("kernel-lifecycle")
    no_bwrap = tmp_path / "bin"
    no_bwrap.mkdir()
    if exe:
        (no_bwrap / "kernel-lifecycle").symlink_to(exe)
    done = _cli("boundary", "score", "--scorer", "python_tests", str(samples),
                env={"PATH": str(no_bwrap), "KL_SANDBOX": "bwrap"})
    assert done.returncode == 1
    assert "install bubblewrap" in done.stderr and "KL_SANDBOX=none" in done.stderr

    done = _cli("boundary", "score", "--scorer", "python_tests", str(samples),
                env={"PATH": str(no_bwrap), "KL_SANDBOX": "none"})
    assert done.returncode == 0 and json.loads(done.stdout)["passed"] is True
