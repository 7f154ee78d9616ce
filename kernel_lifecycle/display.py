"""How long work reports to a person without printing: the CLI hands library code a ``Display``.

Only ``kernel_lifecycle.cli`` prints (its ``RichDisplay`` draws rules, lines, tables and progress
bars with rich). Jobs, the inventory and the quickstart take a ``Display`` and call it; the
default, ``SILENT``, shows nothing (a Ray worker, the scheduler, a library caller).

A progress object is what rich's ``Progress`` offers to the code that advances it:
``add_task(description, total=...) -> task id`` and ``update(task, advance=...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol


class ProgressLike(Protocol):
    def add_task(self, description: str, *, total: float | None = None) -> Any: ...

    def update(self, task_id: Any, *, advance: float | None = None) -> None: ...


class Display(Protocol):
    """What long work tells a person: sections, lines (rich markup allowed), tables, progress."""

    def rule(self, title: str) -> None: ...

    def line(self, text: str) -> None: ...

    def table(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None: ...

    def progress(self) -> AbstractContextManager[ProgressLike | None]: ...


class Silent:
    """A display that shows nothing; its progress is ``None`` (callers skip their bars)."""

    def rule(self, title: str) -> None:
        return None

    def line(self, text: str) -> None:
        return None

    def table(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        return None

    @contextmanager
    def progress(self) -> Iterator[ProgressLike | None]:
        yield None


SILENT: Display = Silent()
