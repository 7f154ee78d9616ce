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


def ui_command(store: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "mlflow", "ui",
        "--backend-store-uri", store,
        "--host", "127.0.0.1",
        "--port", str(port),
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
    from kernel_lifecycle.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    port = port or free_port()
    console.print(f"MLflow UI: http://127.0.0.1:{port}  (store {settings.tracking_uri})")
    try:
        raise typer.Exit(subprocess.call(ui_command(settings.tracking_uri, port), env=ui_env()))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def register(root: typer.Typer) -> None:
    root.command("ui")(ui)
