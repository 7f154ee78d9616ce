"""`kernel-lifecycle ui` takes its children (`mlflow ui` and its uvicorn worker) down with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from kernel_lifecycle.cli.ui import free_port
from tests.servers import stop_group, wait_until_answers

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
    children: list[psutil.Process] = []
    try:
        wait_until_answers(proc, f"http://127.0.0.1:{port}/health", log)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "ui should run mlflow ui as a child"
        assert any("uvicorn" in " ".join(c.cmdline()) or "mlflow" in " ".join(c.cmdline()) for c in children)

        proc.send_signal(sig)  # to the ui process only, as systemd or a terminal's Ctrl-C would
        assert proc.wait(timeout=120) == 0
        gone, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, [(c.pid, c.cmdline()) for c in alive]
    finally:
        stop_group(proc)
        for child in children:  # mlflow ui runs in a group of its own: what a failing ui left behind
            if child.is_running():
                child.kill()
