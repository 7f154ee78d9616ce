"""Start registry/start-server.sh on loopback against the local PostgreSQL, for tests; killed after."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kernel_lifecycle.cli.ui import free_port

REPO = Path(__file__).resolve().parents[2]
START_DEADLINE = 300  # first start migrates MLflow's schema: slow on a loaded CI machine


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, deadline: float = START_DEADLINE) -> None:
    """Wait for ``url`` (a /health endpoint) to answer 200, or fail with the server's log."""
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"{url} did not come up: {log.read_text()[-3000:]}")
        time.sleep(0.5)


@contextmanager
def team_server(root: Path, postgres_url: str, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """An MLflow server on a throw-away PostgreSQL database; yields its http://127.0.0.1:PORT."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"kl_mlflow_{os.getpid()}_{time.monotonic_ns()}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_BACKEND_URI": make_url(postgres_url).set(database=name).render_as_string(hide_password=False),
        "MLFLOW_ARTIFACT_ROOT": str(root / "artifacts"),
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "1",
        "PYTHON": sys.executable,  # the script's python3 may not be the one with this project's MLflow
        # MLflow's GenAI job runner (4 more processes) is not what this tests; see registry/README.md
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        **(extra_env or {}),
    }
    log_path = root / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["bash", str(REPO / "registry" / "start-server.sh")], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/health", proc, log_path)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
