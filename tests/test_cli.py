"""The CLI's contract: exit status 0 / 1 (refused, invalid input: one line) / 2 (usage)."""

from __future__ import annotations

import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kernel_lifecycle.cli", *args], capture_output=True, text=True, timeout=120)


def test_usage_errors_exit_2_without_a_traceback(cli) -> None:
    for args in (("policies", "validate"), ("no-such-command",), ("kernels", "rollback", "k")):
        code, out, err = cli(*args)
        assert code == 2, (args, err)
        assert "Traceback" not in err


def test_refusals_are_one_line_and_exit_1(cli, kl_home) -> None:
    code, out, err = cli("kernels", "audit")
    assert code == 1
    assert err.startswith("error: ") and "kernel-lifecycle db upgrade" in err
    assert len(err.strip().splitlines()) == 1


def test_console_entry_point_runs() -> None:
    proc = _run("--help")
    assert proc.returncode == 0 and "kernels" in proc.stdout and "quickstart" in proc.stdout
