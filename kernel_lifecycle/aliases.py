"""Where aliases point: the lifecycle DB decides, MLflow mirrors.

Every move is a compare-and-set on ``kl_aliases`` plus an audit row in the caller's DB
transaction, mirrored to MLflow before that transaction commits (if MLflow refuses, the
exception rolls the DB change back). The audit table is therefore the truth of where an alias
must point; the guard (``kernel_lifecycle.guard``) puts MLflow back when someone moves an alias
around the lifecycle.
"""

from __future__ import annotations

from types import EllipsisType
from typing import Any

from sqlalchemy.orm import Session

from kernel_lifecycle.db import repo
from kernel_lifecycle.errors import RefusedError
from kernel_lifecycle.registry import client as registry


def move_alias(
    session: Session,
    *,
    name: str,
    alias: str,
    version: str,
    actor: str,
    reason: str | None,
    action: str = "alias_set",
    expected: str | None | EllipsisType = ...,
    details: dict[str, Any] | None = None,
    check_version: bool = True,
) -> str | None:
    """Point ``alias`` at ``version``: compare-and-set in the DB, audit row, MLflow mirror.

    ``expected`` is the version the caller believes the alias holds now (``...``: whatever it
    holds). Losing the race raises RefusedError. The caller commits the session.
    ``check_version=False`` when the caller has just created or fetched the version.
    """
    if check_version:
        registry.get_version(name, version)
    current = repo.get_alias(session, kernel=name, alias=alias)
    want = current if expected is ... else expected
    if want != current or not repo.compare_and_set_alias(
        session, kernel=name, alias=alias, expected=want, new=version
    ):
        raise RefusedError(
            f"{alias} of {name} moved: it was expected at {want or 'nothing'} but is at "
            f"{repo.get_alias(session, kernel=name, alias=alias) or 'nothing'}; re-run the gate "
            "against the current champion"
        )
    repo.record_audit(
        session,
        actor=actor,
        action=action,
        kernel=name,
        version=version,
        alias=alias,
        from_version=current,
        to_version=version,
        reason=reason,
        details=details,
    )
    session.flush()
    registry.set_alias(name, alias, version)
    return current


def rollback(session: Session, *, name: str, to_version: str, actor: str, reason: str) -> str | None:
    """Move ``champion`` back to an earlier version, audited as a rollback."""
    target = registry.get_version(name, to_version)
    current = repo.get_alias(session, kernel=name, alias="champion")
    if current is None:
        raise RefusedError(f"{name} has no champion to roll back from")
    if int(target.version) >= int(current):
        raise RefusedError(
            f"rollback goes to an earlier version: {name} champion is {current}, "
            f"{target.version} is not earlier; use `promote` to move forward"
        )
    if not reason.strip():
        raise RefusedError("a rollback needs a --reason for the audit trail")
    return move_alias(
        session, name=name, alias="champion", version=target.version, actor=actor, reason=reason,
        action="rollback", expected=current, check_version=False,
    )
