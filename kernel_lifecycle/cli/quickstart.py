"""`kernel-lifecycle quickstart`: the demo kernel's whole lifecycle on the embedded defaults."""

from __future__ import annotations

import typer


def quickstart() -> None:
    """Build the demo base, distill, upskill, retire cobol, gate and promote; print the inventory."""
    from kernel_lifecycle.cli.output import display
    from kernel_lifecycle.demo.quickstart import run

    run(display())


def register(root: typer.Typer) -> None:
    root.command("quickstart")(quickstart)
