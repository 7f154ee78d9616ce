"""`kernel-lifecycle ui`: the MLflow UI on the configured store, on loopback and a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import typer

from kernel_lifecycle.cli.output import console


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ui_command(port: int | None = None) -> list[str]:
    from kernel_lifecycle.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    return [
        sys.executable, "-m", "mlflow", "ui",
        "--backend-store-uri", settings.tracking_uri,
        "--host", "127.0.0.1",
        "--port", str(port or free_port()),
        # one person browsing: MLflow's default of 4 workers costs ~1 GB and the cores jobs use
        "--workers", "1",
    ]


def ui_env() -> dict[str, str]:
    """MLflow 3 also starts a job runner (4 more processes) for its GenAI jobs, which browsing
    kernels never uses: off unless the user asked for it."""
    env = dict(os.environ)
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def ui(port: int = typer.Option(None, "--port", help="Port on 127.0.0.1 (default: a free one).")) -> None:
    """Start the MLflow UI on the embedded store (loopback only); Ctrl-C stops it."""
    command = ui_command(port)
    console.print(f"MLflow UI: http://127.0.0.1:{command[command.index('--port') + 1]}  (store {command[5]})")
    try:
        raise typer.Exit(subprocess.call(command, env=ui_env()))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def register(root: typer.Typer) -> None:
    root.command("ui")(ui)
