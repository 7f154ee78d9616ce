"""Top-level Typer app. Groups are added here; each lives in its own module.

Every ``KernelLifecycleError`` becomes a one-line message on stderr and exit status 1;
Typer's usage errors keep exit status 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

from kernel_lifecycle.errors import KernelLifecycleError

app = typer.Typer(
    name="kernel-lifecycle",
    help="Version, change, measure and promote cognitive kernels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


GROUPS = ("db", "kernels", "boundary", "jobs", "policies", "decisions", "scheduler", "guard", "service", "ui", "quickstart", "skills")


def _register() -> None:
    for group in GROUPS:
        importlib.import_module(f"kernel_lifecycle.cli.{group}").register(app)


_register()


def _click_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """Usage-error and abort types of click, and of the copy of click that Typer >= 0.29 bundles."""
    errors, aborts = [], []
    for exceptions, core in (("click.exceptions", "click.exceptions"), ("typer._click.exceptions", "typer._click.core")):
        try:
            errors.append(importlib.import_module(exceptions).ClickException)
            aborts.append(importlib.import_module(core).Abort)
        except (ImportError, AttributeError):
            continue
    return tuple(errors), tuple(aborts)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status (``main`` exits with it; tests call this)."""
    errors, aborts = _click_errors()
    try:
        status = app(args=argv, standalone_mode=False, prog_name="kernel-lifecycle")
    except KernelLifecycleError as exc:
        message = " ".join(str(exc).split("\n"))
        sys.stderr.write(f"error: {message}\n")
        return exc.exit_code
    except aborts:
        sys.stderr.write("aborted\n")
        return 1
    except errors as exc:  # usage errors: exit status 2 (click's own exit_code)
        exc.show()
        return exc.exit_code
    return status if isinstance(status, int) else 0


def main() -> None:
    sys.exit(run())
