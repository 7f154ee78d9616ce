"""`kernel-lifecycle ui`: the MLflow UI on the configured store, on loopback and a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

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


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _stop_group(pgid: int, grace: float = 20.0) -> None:
    """SIGTERM to every process of the group, SIGKILL to what is left after ``grace`` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)


def run_process_group(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` in a process group of its own and wait for it. SIGTERM, SIGINT or SIGHUP
    to this process stop the whole group (``mlflow ui`` and the uvicorn workers it starts), which
    a plain child would outlive; returns the command's status, or 0 when stopped on request."""
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    stopped: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopped.append(signum)
        _stop_group(proc.pid)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        status = proc.wait()
    finally:
        _stop_group(proc.pid)  # workers the leader left behind, however it ended
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stopped else status


def ui(port: int = typer.Option(None, "--port", help="Port on 127.0.0.1 (default: a free one).")) -> None:
    """Start the MLflow UI on the embedded store (loopback only); Ctrl-C or SIGTERM stops it."""
    from kernel_lifecycle.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    port = port or free_port()
    console.print(f"MLflow UI: http://127.0.0.1:{port}  (store {settings.tracking_uri})")
    raise typer.Exit(run_process_group(ui_command(settings.tracking_uri, port), ui_env()))


def register(root: typer.Typer) -> None:
    root.command("ui")(ui)
