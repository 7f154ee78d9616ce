"""Options and helpers shared by the command groups."""

from __future__ import annotations

import getpass
import os

import typer

from kernel_lifecycle.settings import get_settings

JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")


def default_actor() -> str:
    return get_settings().actor or os.environ.get("USER") or getpass.getuser()


ActorOption = typer.Option(None, "--actor", help="Who does this (default: KL_ACTOR or $USER).")
