"""`kernel-lifecycle quickstart`: the demo kernel's whole lifecycle on the embedded defaults."""

from __future__ import annotations

import typer


def quickstart(
    inventory_problems: int = typer.Option(40, help="Problems per skill in the final inventory."),
) -> None:
    """Build the demo base, distill, upskill, retire cobol, gate and promote; print the inventory."""
    from kernel_lifecycle.demo.quickstart import run

    run(inventory_problems=inventory_problems)


def register(root: typer.Typer) -> None:
    root.command("quickstart")(quickstart)
