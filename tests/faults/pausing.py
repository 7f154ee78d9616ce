"""A job paused at a chosen fault point: the fault is injected there, then the job goes on."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.scheduler.procs import wait_for


def fault_at(proc: subprocess.Popen, where: Path, point: str, inject: Callable[[], object]) -> tuple[str, str]:
    """Wait for the job ``proc`` (started with ``FAULT_PAUSE=point``, ``FAULT_DIR=where``) to reach
    ``point``, ``inject`` the fault, let it go on. It must end with status 1 and exactly one
    ``error:`` line, the last one, and no traceback: (that line, its whole stderr)."""
    try:
        wait_for(lambda: (where / f"{point}.reached").exists() or proc.poll() is not None, 600, f"the job to reach {point}")
        assert proc.poll() is None, proc.communicate()
        inject()
        (where / f"{point}.go").write_text("")
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]) and "Traceback" not in err, err[-3000:]
    return errors[0], err
