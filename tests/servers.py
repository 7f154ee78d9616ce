"""Servers the tests start as subprocesses: wait until one answers, stop the group it runs in."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from pathlib import Path

from tests.scheduler.procs import wait_for


def wait_until_answers(proc: subprocess.Popen, url: str, log: Path, timeout: float = 300) -> None:
    """Wait for ``url`` to answer 200; fail at once with the log's tail if ``proc`` exits first.
    The generous default is for a first start on a loaded 2-core machine."""

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[:5]} exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    wait_for(answers, timeout, f"{url} to answer")


def stop_group(proc: subprocess.Popen) -> None:
    """Stop the process group a test started (``start_new_session=True``): the server and its workers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=30)
            return
        except ProcessLookupError:
            proc.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue
