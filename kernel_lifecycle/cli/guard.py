"""`kernel-lifecycle guard check|serve|install`: alias moves made outside the lifecycle, found and reverted."""

from __future__ import annotations

import typer

from kernel_lifecycle.cli.common import JsonOption, decide, serve_until_interrupted
from kernel_lifecycle.cli.output import console, print_json, print_table

app = typer.Typer(help="Find and revert alias moves made outside the lifecycle (MLflow UI, REST, raw client).", no_args_is_help=True)


def _version(value: str | None) -> str:
    return f"v{value}" if value else "(none)"


@app.command()
def check(
    repair: bool = typer.Option(False, "--repair", help="Put MLflow back where the audit says, with an alias_reverted audit row."),
    kernel: list[str] = typer.Option(None, "--kernel", help="Only these kernels (default: every managed kernel)."),
    json_out: bool = JsonOption,
) -> None:
    """Compare every managed kernel's MLflow aliases with the audited targets. Exit 1 while drift remains.
    In team mode the lifecycle service checks (and repairs) it, recording who asked."""
    result = decide("guard_check", {"repair": repair, "kernels": kernel or None}, actor=None)
    if json_out:
        print_json(result)
    elif not result["drift"]:
        console.print("consistent: every managed alias is where the audit says", highlight=False)
    else:
        repaired = result["repaired"]
        print_table(
            "alias drift",
            ["kernel", "alias", "MLflow", "audited", "state"],
            (
                (d["kernel"], d["alias"], _version(d["mlflow_version"]), _version(d["audited_version"]), "reverted" if d in repaired else "drift")
                for d in result["drift"]
            ),
        )
    if not result["consistent"]:
        raise typer.Exit(code=1)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (TLS in front of it when not loopback)."),
    port: int = typer.Option(8765, help="Port to listen on."),
) -> None:
    """Receive MLflow's webhooks (signed with KL_GUARD_SECRET) and revert unaudited moves at once."""
    import logging

    from kernel_lifecycle.db.engine import ensure_current
    from kernel_lifecycle.guard.webhook import make_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ensure_current()
    server = make_server(host, port)  # refuses first without KL_GUARD_SECRET
    # reach MLflow (and load it) before answering: wrong credentials fail here, not on the first
    # delivery, and the first delivery is not slowed by importing MLflow
    from kernel_lifecycle.registry.tracking import client

    client().search_registered_models(max_results=1)
    console.print(f"guard listening on http://{host}:{server.server_address[1]}/ (GET /health)", highlight=False)
    serve_until_interrupted(server)


@app.command()
def install(
    url: str = typer.Option(..., "--url", help="Where MLflow delivers: the URL `guard serve` is reachable at."),
    json_out: bool = JsonOption,
) -> None:
    """Create or update the guard's webhook on the MLflow server (run as an MLflow admin)."""
    from kernel_lifecycle.guard.webhook import install as do_install

    result = do_install(url)
    if json_out:
        print_json(result)
    else:
        console.print(f"{result['action']} webhook {result['name']} ({result['webhook_id']}) -> {result['url']}", highlight=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="guard")
