"""The run loop: jobs synced while it runs are picked up; a past sunset runs once, ever."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from sqlalchemy import select

from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.db.models import Job, SchedulerLease
from kernel_lifecycle.scheduler import fire as fire_mod
from kernel_lifecycle.scheduler.sync import open_scheduler, sync
from tests.scheduler.handlers import db_job


def _make_due(job_id: str) -> None:
    with open_scheduler() as scheduler:
        job = scheduler.get_job(job_id)
        job._modify(next_run_time=datetime.now(timezone.utc))
        scheduler._lookup_jobstore("default").replace_job(job)


def test_a_running_scheduler_picks_up_what_sync_adds(migrated_db: str, apply_policy) -> None:  # noqa: ANN001
    from kernel_lifecycle.scheduler.service import run_service

    stop = threading.Event()
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("summary", run_service(handler=db_job, poll=0.2, stop_event=stop, install_signals=False))
    )
    fire_mod.STATE.outcomes.clear()  # an earlier test's outcomes must not end the wait below
    thread.start()
    try:
        time.sleep(1.0)  # running, with an empty store
        apply_policy("late", '- {name: n, kind: cron, cron: "* * * * *", plan: downskill}')
        sync()
        _make_due("late:n:downskill")
        deadline = time.monotonic() + 20
        while not any(o["outcome"] == "done" for o in fire_mod.STATE.outcomes) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=30)
    done = [o for o in result["summary"].outcomes if o["outcome"] == "done"]
    assert done and done[0]["trigger_id"] == "late:n:downskill"
    with session_scope() as session:
        assert session.get(Job, done[0]["job_id"]).state == "succeeded"


def test_a_past_sunset_runs_once_and_is_not_rescheduled(migrated_db: str, apply_policy) -> None:  # noqa: ANN001
    from kernel_lifecycle.scheduler.service import run_service

    apply_policy("old", "- {name: retire, kind: sunset, skill: cobol, plan: downskill}", sunset="2026-01-15")
    assert sync().added == ["old:retire:downskill"]
    summary = run_service(handler=db_job, once=True, duration=30, poll=0.2, install_signals=False)
    (outcome,) = summary.outcomes
    # however late: a sunset has no misfire grace; its lease key is the sunset itself
    assert outcome["outcome"] == "done" and outcome["fire_time"] == "2026-01-15T00:00:00+00:00"
    with open_scheduler() as scheduler:
        assert scheduler.get_jobs() == []  # one-shot: gone from the store after firing
    report = sync()
    assert report.already_fired == ["old:retire:downskill"] and report.added == []
    with session_scope() as session:
        assert [r.status for r in session.scalars(select(SchedulerLease))] == ["done"]


def test_a_running_scheduler_heals_a_dead_peers_fire(migrated_db: str, apply_policy) -> None:  # noqa: ANN001
    """A peer on this host dies mid-fire while we keep running: its job and lease are failed
    with the reason and the policy's retry runs here."""
    import socket

    from kernel_lifecycle.db import repo
    from kernel_lifecycle.scheduler import leases
    from kernel_lifecycle.scheduler.service import run_service

    apply_policy("peer", '- {name: n, kind: cron, cron: "0 3 * * *", plan: downskill, retry: {max_retries: 1, backoff_seconds: 0}}')
    sync()
    dead = f"{socket.gethostname()}:{2**22 + 12345}"  # above pid_max: no such process
    when = datetime(2026, 3, 1, 3, 0, tzinfo=timezone.utc)
    stop = threading.Event()
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault(
            "summary", run_service(handler=db_job, poll=0.2, stop_event=stop, install_signals=False, recover_every=0.5)
        )
    )
    fire_mod.STATE.outcomes.clear()  # an earlier test's outcomes must not end the wait below
    thread.start()
    try:
        time.sleep(0.8)
        # the job first, then the lease, as a fire does: a recovery between the two writes
        # must find the lease *with* its job (lease first let it fail a job-less lease)
        with session_scope() as session:
            job = repo.create_job(session, kind="downskill", kernel="peer", trigger_id=leases.run_id("peer:n:downskill", when), owner=dead)
            repo.transition(session, job=job, to_state="running")
            job_id = job.id
        assert leases.try_acquire(trigger_id="peer:n:downskill", fire_time=when, owner=dead)
        deadline = time.monotonic() + 20
        while not any(o["trigger_id"] == "peer:n:downskill#retry1" for o in fire_mod.STATE.outcomes) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=30)
    with session_scope() as session:
        assert session.get(Job, job_id).state == "failed"
        rows = {r.trigger_id: r for r in session.scalars(select(SchedulerLease))}
    assert rows["peer:n:downskill"].status == "failed" and rows["peer:n:downskill"].job_id == job_id
    assert rows["peer:n:downskill#retry1"].status == "done"
    assert result["summary"].retries_queued == ["peer:n:downskill#retry1"]
