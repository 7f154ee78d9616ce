"""`kernel-lifecycle db`: migrate and inspect the lifecycle database."""

from __future__ import annotations

import typer

from kernel_lifecycle.cli.output import console, print_json
from kernel_lifecycle.cli.common import JsonOption

app = typer.Typer(help="Lifecycle database: migrations and status.", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target Alembic revision.")) -> None:
    """Bring the lifecycle database up to the code's schema (idempotent)."""
    from kernel_lifecycle.db.engine import get_engine, redact, upgrade as do_upgrade

    head = do_upgrade(revision=revision)
    console.print(f"lifecycle database {redact(str(get_engine().url))} is at {head}")


@app.command()
def status(json_out: bool = JsonOption) -> None:
    """Show the database URL, its revision and the code's revision."""
    from kernel_lifecycle.db.engine import current_revision, get_engine, head_revision, redact

    engine = get_engine()
    data = {
        "url": redact(str(engine.url)),
        "current": current_revision(engine),
        "head": head_revision(),
    }
    data["up_to_date"] = data["current"] == data["head"]
    if json_out:
        print_json(data)
    else:
        console.print(data)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="db")
