"""The audit trail and the approvals are append-only in the database itself (migration 0003), on
SQLite and PostgreSQL: the lifecycle's own connection can add rows but not change or remove one,
and a refused rewrite leaves the rows as they were. The principal column is written only inside
``repo.acting_as`` (the service's verified requests)."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import downgrade, session_scope, upgrade
from kernel_lifecycle.db.models import Approval, AuditEvent


def _trail() -> list[tuple]:
    with session_scope() as session:
        audit = [(e.id, e.actor, e.principal, e.action) for e in repo.list_audit(session, kernel="k")]
        approvals = [(a.approver, a.note) for a in repo.approvals_for(session, kernel="k", version="1")]
    return audit + approvals


@pytest.mark.parametrize(
    "statement",
    [
        update(AuditEvent).values(actor="mallory"),
        delete(AuditEvent),
        update(Approval).values(approver="mallory"),
        delete(Approval),
    ],
    ids=["update-audit", "delete-audit", "update-approval", "delete-approval"],
)
def test_rows_cannot_be_changed_or_removed(migrated_db: str, statement) -> None:  # noqa: ANN001
    with session_scope() as session:
        repo.record_audit(session, actor="alice", action="approve", kernel="k", version="1")
        with repo.acting_as("alice"):
            repo.record_audit(session, actor="alice", action="promote", kernel="k", version="1")
        repo.add_approval(session, kernel="k", version="1", approver="alice", note="ok")
    before = _trail()
    assert [row[2] for row in before[:2]] == ["alice", None]  # newest first: verified, then typed
    with pytest.raises(DBAPIError, match="append-only"), session_scope() as session:
        session.execute(statement.execution_options(synchronize_session=False))
    assert _trail() == before


def test_the_migration_goes_down_and_up_again(migrated_db: str) -> None:
    from kernel_lifecycle.db.engine import get_engine

    with session_scope() as session:
        repo.record_audit(session, actor="ops", action="alias_set", kernel="k")
    downgrade(migrated_db, "0002")
    with get_engine(migrated_db).begin() as conn:  # without the triggers the row can be removed again
        assert conn.execute(text("DELETE FROM kl_audit_events")).rowcount == 1
    upgrade(migrated_db)
    with session_scope() as session:
        repo.record_audit(session, actor="ops", action="alias_set", kernel="k")
    with pytest.raises(DBAPIError, match="append-only"), get_engine(migrated_db).begin() as conn:
        conn.execute(text("DELETE FROM kl_audit_events"))
