"""Must-show (2): kill -9 of a scheduler mid-job; and a clean SIGTERM stop of a long job.

After the restart: the killed job is failed with its reason, its lease failed, no alias moved
for it, the policy's retry ran once (``#retry1``), and the next regular fire succeeded.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import select

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.db.models import AliasState, Job, SchedulerLease
from kernel_lifecycle.scheduler import leases
from tests.scheduler.procs import scheduler_process, wait_for

TRIGGER = "crash:tick:downskill"
POLICY = '- {name: tick, kind: cron, cron: "* * * * *", plan: downskill, retry: {max_retries: 1, backoff_seconds: 1}}'


def _aliases(url: str) -> dict[tuple[str, str], str]:
    with session_scope(url) as session:
        return {(a.kernel, a.alias): a.version for a in session.scalars(select(AliasState))}


def _running_job(url: str) -> Job | None:
    with session_scope(url) as session:
        return session.scalars(select(Job).where(Job.kernel == "crash", Job.state == "running")).first()


@pytest.fixture
def crash_db(scheduled_postgres, kl_home: Path) -> str:  # noqa: ANN001
    url = scheduled_postgres("crash", POLICY, "*/4")
    with session_scope(url) as session:
        assert repo.compare_and_set_alias(session, kernel="crash", alias="champion", expected=None, new="1")
    return url


def test_kill_9_mid_job_then_restart(crash_db: str, kl_home: Path, tmp_path: Path) -> None:
    url = crash_db
    before = _aliases(url)
    first = scheduler_process(url, kl_home, "--for", "120", "--poll", "0.5", fire_seconds=120, log=tmp_path / "a.log")
    try:
        killed = wait_for(lambda: _running_job(url), 30, "a running job")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    with session_scope(url) as session:
        lease = session.scalars(select(SchedulerLease).where(SchedulerLease.status == "running")).one()
        assert session.get(Job, killed.id).state == "running"  # left behind by the dead process
    fire_time = leases.as_utc(lease.fire_time)
    assert killed.trigger_id == leases.run_id(TRIGGER, fire_time)
    assert _aliases(url) == before

    second = scheduler_process(url, kl_home, "--for", "10", "--poll", "0.5", fire_seconds=0.3, log=tmp_path / "b.log")
    assert second.wait(timeout=60) == 0, (tmp_path / "b.log").read_text()
    log = (tmp_path / "b.log").read_text()
    assert "Traceback" not in log, log

    with session_scope(url) as session:
        job = session.get(Job, killed.id)
        rows = {(r.trigger_id, leases.as_utc(r.fire_time)): r for r in session.scalars(select(SchedulerLease))}
        jobs = {j.id: j for j in session.scalars(select(Job))}
    assert job.state == "failed"
    assert "the scheduler process running it stopped" in job.error and f":{first.pid}" in job.error
    dead = rows[(TRIGGER, fire_time)]
    assert dead.status == "failed" and dead.job_id == killed.id
    assert "stopped (crash or kill)" in dead.message and "failed" in dead.message
    # the retry rule: attempt 1 ran once, after the backoff, for the same fire time
    retry = rows[(f"{TRIGGER}#retry1", fire_time)]
    assert retry.status == "done", retry.message
    assert jobs[retry.job_id].state == "succeeded"
    assert (f"{TRIGGER}#retry2", fire_time) not in rows
    # the next regular fires succeeded
    # (fires due while the killed job ran were recorded `missed` by the first process: max_instances)
    later = [r for (t, when), r in rows.items() if t == TRIGGER and when > fire_time and r.owner.endswith(f":{second.pid}")]
    assert later and all(r.status == "done" and jobs[r.job_id].state == "succeeded" for r in later)
    assert all(r.status == "missed" for (t, when), r in rows.items() if t == TRIGGER and r.owner.endswith(f":{first.pid}") and when > fire_time)
    # no alias ever moved for the killed job; the champion never moved at all
    after = _aliases(url)
    assert after[("crash", "champion")] == "1"
    assert killed.id not in after.values()
    assert "recovered fire trigger=crash:tick:downskill" in log


def test_sigterm_fails_an_unfinished_job_cleanly(crash_db: str, kl_home: Path, tmp_path: Path) -> None:
    url = crash_db
    proc = scheduler_process(url, kl_home, "--for", "120", "--poll", "0.5", "--stop-timeout", "1", fire_seconds=120, log=tmp_path / "a.log")
    try:
        job = wait_for(lambda: _running_job(url), 30, "a running job")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "a.log").read_text()
    assert code == 1, log  # exit 1: a fire was abandoned
    assert "stopped (SIGTERM)" in log and "Traceback" not in log
    with session_scope(url) as session:
        failed = session.get(Job, job.id)
        rows = list(session.scalars(select(SchedulerLease)))
    assert failed.state == "failed" and "stopped (SIGTERM) before the fire finished" in failed.error
    lease = next(r for r in rows if r.job_id == job.id)
    assert lease.trigger_id == TRIGGER and lease.status == "failed"
    retry = next(r for r in rows if r.trigger_id == f"{TRIGGER}#retry1")
    assert retry.status == "pending" and retry.fire_time == lease.fire_time  # the next start runs it
    assert ("crash", "candidate") not in _aliases(url)


def test_sigterm_lets_a_short_job_finish(crash_db: str, kl_home: Path, tmp_path: Path) -> None:
    url = crash_db
    proc = scheduler_process(url, kl_home, "--for", "120", "--poll", "0.5", "--stop-timeout", "30", fire_seconds=3, log=tmp_path / "a.log")
    try:
        job = wait_for(lambda: _running_job(url), 30, "a running job")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "a.log").read_text()
    assert code == 0, log
    assert "stopped (SIGTERM)" in log
    with session_scope(url) as session:
        assert session.get(Job, job.id).state == "succeeded"
        lease = session.scalars(select(SchedulerLease).where(SchedulerLease.job_id == job.id)).one()
    assert lease.status == "done" and lease.released_at is not None
    assert _aliases(url)[("crash", "candidate")] == job.id
