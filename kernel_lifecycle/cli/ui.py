"""`kernel-lifecycle ui`: the MLflow UI on the configured store, on loopback and a free port."""

from __future__ import annotations

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
    ]


def ui(port: int = typer.Option(None, "--port", help="Port on 127.0.0.1 (default: a free one).")) -> None:
    """Start the MLflow UI on the embedded store (loopback only); Ctrl-C stops it."""
    command = ui_command(port)
    console.print(f"MLflow UI: http://127.0.0.1:{command[-1]}  (store {command[5]})")
    try:
        raise typer.Exit(subprocess.call(command))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def register(root: typer.Typer) -> None:
    root.command("ui")(ui)
