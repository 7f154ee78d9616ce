"""Servers the tests start as subprocesses: wait until one answers, stop the group it runs in."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import urllib.request
from pathlib import Path

from tests.scheduler.procs import wait_for


def basic_auth_env(root: Path, admin_password: str) -> dict[str, str]:
    """The environment of an MLflow server with the basic-auth app (registry/basic_auth.ini, its
    user store moved to a SQLite file under ``root``) and the guard's webhooks allowed on loopback;
    for ``tests.registry.team_server.team_server``. The test process's own MLflow credentials are blanked."""
    from cryptography.fernet import Fernet

    repo = Path(__file__).resolve().parents[1]
    ini = (repo / "registry" / "basic_auth.ini").read_text().replace(
        "postgresql://postgres@127.0.0.1:5432/mlflow_auth", f"sqlite:///{root / 'auth.db'}"
    )
    (root / "basic_auth.ini").write_text(ini)
    return {
        "MLFLOW_APP_NAME": "basic-auth",
        "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),  # basic-auth's CSRF protection
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        # loopback delivery: MLflow sends webhooks to https and public addresses only by default
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_TRACKING_USERNAME": "",
        "MLFLOW_TRACKING_PASSWORD": "",
    }


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
