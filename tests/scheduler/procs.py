"""Running real `kernel-lifecycle scheduler run` processes for the multi-process tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The real pipeline trains and evaluates a model per fire (minutes of CPU); a fire every few
# seconds needs a handler that does a job's DB lifecycle only (see handlers.py).
HANDLER = "tests.scheduler.handlers:db_job"


def scheduler_process(
    db_url: str, home: Path, *args: str, fire_seconds: float = 0.3, log: Path, handler: str | None = HANDLER,
    prefix: tuple[str, ...] = (), extra_env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """``handler=None``: the default, the real ``kernel_lifecycle.pipeline:run_plan``.
    ``prefix``: a command the scheduler runs under (``unshare ...``); ``extra_env``: more variables."""
    env = dict(os.environ)
    env.update(
        KL_HOME=str(home),
        KL_DATABASE_URL=db_url,
        KL_TEST_FIRE_SECONDS=str(fire_seconds),
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        **(extra_env or {}),
    )
    cmd = [*prefix, sys.executable, "-c", "from kernel_lifecycle.cli.app import main; main()", "scheduler", "run", *args]
    if handler is not None:
        cmd += ["--handler", handler]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
