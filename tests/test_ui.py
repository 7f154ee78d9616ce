"""`kernel-lifecycle ui` takes its children (`mlflow ui` and its uvicorn worker) down with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

from kernel_lifecycle.cli.ui import free_port
from tests.scheduler.procs import wait_for

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_ui_leaves_no_child_behind(kl_home: Path, tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    log = tmp_path / "ui.log"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # its own session, so that whatever the test leaves behind can be stopped as one group
    proc = subprocess.Popen(
        [sys.executable, "-m", "kernel_lifecycle.cli", "ui", "--port", str(port)],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:

        def answers() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"ui exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(answers, 300, "the MLflow UI to answer /health")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "ui should run mlflow ui as a child"
        assert any("uvicorn" in " ".join(c.cmdline()) or "mlflow" in " ".join(c.cmdline()) for c in children)

        proc.send_signal(sig)  # to the ui process only, as systemd or a terminal's Ctrl-C would
        assert proc.wait(timeout=120) == 0
        gone, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, [(c.pid, c.cmdline()) for c in alive]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
