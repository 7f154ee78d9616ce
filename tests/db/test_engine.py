"""A database behind the code, or unreachable, fails with an instruction; repository basics."""

from __future__ import annotations

import pytest

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import ensure_current, session_scope
from kernel_lifecycle.errors import DatabaseError, JobError, NotFoundError


def test_empty_database_asks_for_upgrade(db_url: str) -> None:
    with pytest.raises(DatabaseError, match="kernel-lifecycle db upgrade"):
        ensure_current(db_url)


def test_unreachable_database_is_one_clear_error(cli, kl_home, monkeypatch) -> None:
    from kernel_lifecycle.settings import get_settings

    monkeypatch.setenv("KL_DATABASE_URL", "postgresql://nobody:secret@127.0.0.1:1/nowhere")
    get_settings.cache_clear()
    code, out, err = cli("kernels", "audit")
    assert code == 1
    assert err.startswith("error: cannot reach the lifecycle database")
    assert "secret" not in err and len(err.strip().splitlines()) == 1


def test_bad_database_url_is_a_configuration_error(cli, kl_home, monkeypatch) -> None:
    from kernel_lifecycle.settings import get_settings

    monkeypatch.setenv("KL_DATABASE_URL", "not a url")
    get_settings.cache_clear()
    code, _, err = cli("db", "upgrade")
    assert code == 1 and "is not a database URL" in err


def test_job_state_machine(migrated_db: str) -> None:
    with session_scope() as session:
        job = repo.create_job(session, kind="downskill", kernel="k", params={"skill": "cobol"})
        repo.transition(session, job=job, to_state="running")
        repo.transition(session, job=job, to_state="evaluating")
        with pytest.raises(JobError, match="cannot go from evaluating to queued"):
            repo.transition(session, job=job, to_state="queued")
        repo.transition(session, job=job, to_state="failed", message="boom")
        job_id = job.id
    with session_scope() as session:
        job = repo.get_job(session, job_id=job_id[:8])
        assert [e.to_state for e in job.events] == ["queued", "running", "evaluating", "failed"]
        assert job.error == "boom"
        # 17 more ids over 16 hex digits: some first character starts two of them
        firsts = [repo.create_job(session, kind="upskill", kernel="k").id[0] for _ in range(17)]
        shared = next(c for c in firsts if firsts.count(c) > 1)
        with pytest.raises(NotFoundError, match="start of several jobs"):
            repo.get_job(session, job_id=shared)
        for wild in ("%", "_" * 8, ""):
            with pytest.raises(NotFoundError):
                repo.get_job(session, job_id=wild)


def test_orphaned_jobs_fail_with_reason(migrated_db: str) -> None:
    with session_scope() as session:
        job = repo.create_job(session, kind="upskill", kernel="k", owner="nohost-but-here:1")
        import socket

        job.owner = f"{socket.gethostname()}:999999"  # a pid that does not exist
        repo.transition(session, job=job, to_state="running")
    with session_scope() as session:
        failed = repo.fail_orphaned_jobs(session)
        assert [j.id for j in failed] == [job.id]
        assert "stopped (crash or kill)" in failed[0].error


def test_compare_and_set_alias_has_one_winner(migrated_db: str) -> None:
    with session_scope() as session:
        assert repo.compare_and_set_alias(session, kernel="k", alias="champion", expected=None, new="1")
        assert not repo.compare_and_set_alias(session, kernel="k", alias="champion", expected=None, new="2")
    with session_scope() as session:
        assert repo.compare_and_set_alias(session, kernel="k", alias="champion", expected="1", new="2")
        assert not repo.compare_and_set_alias(session, kernel="k", alias="champion", expected="1", new="3")
        assert repo.get_alias(session, kernel="k", alias="champion") == "2"
