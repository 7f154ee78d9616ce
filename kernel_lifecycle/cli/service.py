"""`kernel-lifecycle serve`: the lifecycle service of team mode (see kernel_lifecycle/service)."""

from __future__ import annotations

import typer

from kernel_lifecycle.cli.common import serve_until_interrupted
from kernel_lifecycle.cli.output import console


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (TLS in front of it when not loopback)."),
    port: int = typer.Option(8790, help="Port to listen on."),
) -> None:
    """Run the lifecycle API: approve, promote, rollback, policy apply, jobs and guard repair, each
    as the principal MLflow's user store proves. Its DB URL and MLflow service credentials come from
    the environment (KL_DATABASE_URL, MLFLOW_TRACKING_USERNAME/PASSWORD) or ~/.mlflow/credentials."""
    import logging

    from kernel_lifecycle.service.app import make_service

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server, principal = make_service(host, port)
    console.print(f"lifecycle service on http://{host}:{server.server_address[1]}/ as {principal} (GET /health)", highlight=False)
    serve_until_interrupted(server)


def register(root: typer.Typer) -> None:
    root.command("serve")(serve)
