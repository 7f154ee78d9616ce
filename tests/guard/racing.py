"""Promotions racing the guard: two promoters flip ``champion`` by compare-and-set while a guard
loop runs ``check --repair``, as the scheduler's interval check would."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from kernel_lifecycle import aliases
from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.errors import RefusedError
from kernel_lifecycle.guard.aliases import check


@dataclass
class Race:
    won: int = 0
    lost: int = 0
    guard_rounds: int = 0
    guard_repaired: list[Any] = field(default_factory=list)
    guard_remaining: list[Any] = field(default_factory=list)


def race_promotions(kernel: str, *, rounds: int = 8, targets: tuple[str, ...] = ("2", "3")) -> Race:
    """Each promoter moves champion to its target (or to v1 when it is there already) ``rounds``
    times; returns what happened, and raises the first error any thread hit."""
    race, errors, stop, lock = Race(), [], threading.Event(), threading.Lock()

    def guard() -> None:
        try:
            while not stop.is_set():
                result = check(do_repair=True, source="scheduler")
                with lock:
                    race.guard_rounds += 1
                    race.guard_repaired += result.repaired
                    race.guard_remaining += result.remaining
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def promoter(target: str) -> None:
        try:
            for _ in range(rounds):
                with session_scope() as session:
                    current = repo.get_alias(session, kernel=kernel, alias="champion")
                    try:
                        aliases.move_alias(
                            session, name=kernel, alias="champion", version=target if current != target else "1",
                            actor="ops", reason="race", expected=current,
                        )
                        won = True
                    except RefusedError:
                        session.rollback()
                        won = False
                with lock:
                    race.won += won
                    race.lost += not won
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    watcher = threading.Thread(target=guard)
    promoters = [threading.Thread(target=promoter, args=(t,)) for t in targets]
    watcher.start()
    for t in promoters:
        t.start()
    for t in promoters:
        t.join(timeout=300)
    stop.set()
    watcher.join(timeout=300)
    if errors:
        raise errors[0]
    return race
