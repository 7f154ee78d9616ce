"""Fault (2): the PostgreSQL connection is lost in the middle of work (``pg_terminate_backend``
at a chosen point). A promotion either happened with its audit row or did not happen at all; a
running scheduler reconnects by itself and the fire it was running ends once.

(A restart of the server is not done here: the tests share one PostgreSQL server; terminating
every session of the test's own database is what a restart does to its clients.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, select, text

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import get_engine, session_scope
from kernel_lifecycle.db.models import AuditEvent, Job, SchedulerLease
from kernel_lifecycle.scheduler import leases
from tests.factories import make_report
from tests.scheduler.procs import scheduler_process, wait_for
from tests.test_promotion import base_dir, kernel_with_champion  # noqa: F401 - fixtures: python-kernel v1 champion


def _terminate(url: str, pids: list[int] | None = None) -> int:
    """Terminate the sessions ``pids`` (default: every session of the database but this one) from
    a connection of its own, as an administrator or a failover does; returns how many."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            where = "pid = ANY(:pids)" if pids is not None else "datname = current_database() AND pid <> pg_backend_pid()"
            rows = conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {where}"),
                                {"pids": pids} if pids is not None else {}).all()
    finally:
        admin.dispose()
    return sum(1 for (ok,) in rows if ok)


class CutAtCommit:
    """Terminates the session of the transaction that wrote a promote audit row, at its COMMIT:
    ``before`` (the server never sees the commit) or ``after`` (it committed; the client's
    connection dies right after)."""

    def __init__(self, url: str, when: str) -> None:
        self.url, self.when, self.fired, self.cut_after = url, when, 0, 0
        self.engine = get_engine(url)
        event.listen(self.engine, "before_cursor_execute", self._note)
        event.listen(self.engine, "commit", self._commit)

    def _note(self, conn, _cursor, statement, params, _context, _many) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("INSERT INTO KL_AUDIT_EVENTS") and "promote" in str(params):
            conn.info["promoting"] = conn.connection.dbapi_connection.info.backend_pid

    def _commit(self, conn) -> None:  # noqa: ANN001
        pid = conn.info.pop("promoting", None)
        if pid is None or self.fired:
            return
        self.fired += 1
        if self.when == "before":
            assert _terminate(self.url, [pid]) == 1
        else:  # let the commit through: terminate when the connection is back in the pool
            event.listen(self.engine, "checkin", self._after, once=True)
            self.pid = pid

    def _after(self, *_args) -> None:  # noqa: ANN002
        self.cut_after = _terminate(self.url, [self.pid])

    def remove(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._note)
        event.remove(self.engine, "commit", self._commit)


def _promotions(version: str) -> list[str]:
    with session_scope() as session:
        return [e.outcome for e in session.scalars(select(AuditEvent).where(AuditEvent.action == "promote", AuditEvent.version == version))]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_promotion_cut_off_happened_with_its_audit_row_or_not_at_all(kernel_with_champion, cli, db_url) -> None:  # noqa: F811
    new_version = kernel_with_champion
    v2 = new_version(make_report(), "1")
    assert cli("gate", "python-kernel", v2)[0] == 0
    assert cli("approve", "python-kernel", v2, "--actor", "alice")[0] == 0

    cut = CutAtCommit(db_url, "before")
    try:
        code, _, err = cli("promote", "python-kernel", v2, "--actor", "alice", "--reason", "cut before commit")
    finally:
        cut.remove()
    assert cut.fired == 1
    assert code == 1 and err.startswith("error: lifecycle database error") and len(err.strip().splitlines()) == 1, err
    with session_scope() as session:  # the pool's pre-ping replaces the dead connection
        assert repo.get_alias(session, kernel="python-kernel", alias="champion") == "1"
    assert _promotions(v2) == []  # not half: neither the alias nor the audit row

    cut = CutAtCommit(db_url, "after")
    try:
        code, out, err = cli("promote", "python-kernel", v2, "--actor", "alice", "--reason", "cut after commit")
        with session_scope() as session:  # the next checkout's ping finds its connection dead, and reconnects
            champion = repo.get_alias(session, kernel="python-kernel", alias="champion")
    finally:
        cut.remove()
    assert cut.fired == 1 and cut.cut_after == 1
    assert code == 0, err
    assert champion == v2 and _promotions(v2) == ["ok"]  # whole: the alias with its audit row
    code, _, err = cli("promote", "python-kernel", v2, "--actor", "alice")
    assert code == 1 and "already champion" in err


TRIGGER = "cut:tick:downskill"
POLICY = '- {name: tick, kind: cron, cron: "* * * * *", plan: downskill, retry: {max_retries: 0, backoff_seconds: 1}}'


@pytest.fixture
def cut_db(scheduled_postgres, kl_home: Path) -> str:  # noqa: ANN001
    return scheduled_postgres("cut", POLICY, "*/5")


def _jobs_and_leases(url: str) -> tuple[list[tuple], dict]:
    with session_scope(url) as session:
        jobs = [(j.id, j.trigger_id, j.state) for j in session.scalars(select(Job))]
        rows = {(r.trigger_id, leases.as_utc(r.fire_time)): (r.status, r.job_id) for r in session.scalars(select(SchedulerLease))}
    return jobs, rows


def test_a_scheduler_cut_off_mid_fire_reconnects_and_the_fire_ends_once(cut_db: str, kl_home: Path, tmp_path: Path) -> None:
    url = cut_db
    log = tmp_path / "scheduler.log"
    proc = scheduler_process(url, kl_home, "--for", "120", "--poll", "0.5", fire_seconds=4, log=log)
    try:
        [(job_id, run, _)] = wait_for(lambda: [j for j in _jobs_and_leases(url)[0] if j[2] == "running"], 90, "a fire's job to run")
        # every session of the scheduler goes: the job store's, the lease's, the job's
        assert _terminate(url) >= 1
        wait_for(lambda: any(j[0] == job_id and j[2] == "succeeded" for j in _jobs_and_leases(url)[0]), 60, "the cut job to end")
        # and the scheduler goes on: the next fire runs too
        wait_for(lambda: sum(s == "done" for s, _ in _jobs_and_leases(url)[1].values()) >= 2, 60, "the next fire")
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=90)
    jobs, rows = _jobs_and_leases(url)
    cut_fire = [key for key, (_, lease_job) in rows.items() if lease_job == job_id]
    assert len(cut_fire) == 1 and rows[cut_fire[0]][0] == "done", rows
    assert [j for j in jobs if j[1] == run] == [(job_id, run, "succeeded")]  # once: no second job for that fire
    assert all(key[0] == TRIGGER for key in rows)  # no retry was needed
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    assert os.path.getsize(log) > 0
