"""Printing for the CLI: rich tables for people, ``--json`` for tools. Errors go to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kernel_lifecycle.display import SILENT, Display, ProgressLike

console = Console()
err_console = Console(stderr=True)


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_default, sort_keys=False) + "\n")
    sys.stdout.flush()


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, out: Console | None = None) -> None:
    table = Table(title=title)
    for column in columns:
        # fold, never cut: an auditor reading a narrow terminal must see whole values
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    (out or console).print(table)


def print_mapping(title: str, data: Mapping[str, Any]) -> None:
    print_table(title, ["field", "value"], ((k, v) for k, v in data.items()))


class RichDisplay:
    """The CLI's ``Display``: rules, lines and tables on ``console``, progress bars on stderr."""

    def __init__(self, out: Console | None = None) -> None:
        self.out = out or console

    def rule(self, title: str) -> None:
        self.out.rule(f"[bold]{title}")

    def line(self, text: str) -> None:
        self.out.print(text, highlight=False)

    def table(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        print_table(title, columns, rows, out=self.out)

    @contextmanager
    def progress(self) -> Iterator[ProgressLike | None]:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err_console, transient=False,
        ) as bar:
            yield bar


def display(enabled: bool = True) -> Display:
    """A RichDisplay, or the silent one (``--json`` output must stay clean)."""
    return RichDisplay() if enabled else SILENT
