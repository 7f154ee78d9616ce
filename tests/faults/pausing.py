"""A job interrupted at a chosen moment (a fault point it pauses at, or a state it reaches) and
what it must print then: one error line."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.scheduler.procs import wait_for


def fault_at(proc: subprocess.Popen, where: Path, point: str, inject: Callable[[], object]) -> tuple[str, str]:
    """Wait for the job ``proc`` (started with ``FAULT_PAUSE=point``, ``FAULT_DIR=where``) to reach
    ``point``, ``inject`` the fault, let it go on; it must end as :func:`one_error_after` says."""

    def go() -> None:
        inject()
        (where / f"{point}.go").write_text("")

    return one_error_after(proc, lambda: (where / f"{point}.reached").exists(), go, f"the job to reach {point}")


def one_error_after(proc: subprocess.Popen, ready: Callable[[], object], act: Callable[[], object], what: str, *,
                    wait: float = 600, finish: float = 300) -> tuple[str, str]:
    """Wait (``wait`` s) until ``ready()`` while the job ``proc`` runs, ``act``, then let it end
    (``finish`` s; its process group is killed if it does not). It must end with status 1 and
    exactly one ``error:`` line, the last one, and no traceback: (that line, its whole stderr)."""
    try:
        wait_for(lambda: ready() or proc.poll() is not None, wait, what)
        assert proc.poll() is None, proc.communicate()
        act()
        _, err = proc.communicate(timeout=finish)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # (progress bars and warnings above)
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]) and "Traceback" not in err, err[-3000:]
    return errors[0], err
