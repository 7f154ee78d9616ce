"""The lease and the shared job store under contention; Alembic never touches apscheduler_jobs."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select, text

from kernel_lifecycle.db.engine import alembic_config, downgrade, get_engine, session_scope, upgrade
from kernel_lifecycle.db.models import SchedulerLease
from kernel_lifecycle.scheduler import leases
from kernel_lifecycle.scheduler.sync import open_scheduler, sync

WHEN = datetime(2026, 5, 1, 3, 0, tzinfo=timezone.utc)


def test_one_of_many_concurrent_acquires_wins(migrated_db: str) -> None:
    wins: list[bool] = []
    barrier = threading.Barrier(4)

    def contend(n: int) -> None:
        barrier.wait()
        wins.append(leases.try_acquire(trigger_id="k:t:downskill", fire_time=WHEN, owner=f"host:{n}"))

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False, False, False, True]
    # the same fire time written in another zone is the same lease
    assert not leases.try_acquire(trigger_id="k:t:downskill", fire_time=WHEN.astimezone(timezone(timedelta(hours=2))), owner="x:1")
    assert leases.try_acquire(trigger_id="k:t:downskill", fire_time=WHEN + timedelta(minutes=1), owner="x:1")


def test_retries_count_attempts_in_the_key(migrated_db: str) -> None:
    assert leases.try_acquire(trigger_id="k:t:downskill", fire_time=WHEN, owner="x:1")
    first = leases.add_retry(trigger_id="k:t:downskill", fire_time=WHEN, owner="x:1", max_retries=2, backoff_seconds=0, reason="r")
    assert first == "k:t:downskill#retry1"
    # a second process recovering the same failure cannot queue attempt 1 again
    assert leases.add_retry(trigger_id="k:t:downskill", fire_time=WHEN, owner="x:2", max_retries=2, backoff_seconds=0, reason="r") is None
    assert [r.trigger_id for r in leases.due_retries()] == [first]
    assert leases.claim_retry(trigger_id=first, fire_time=WHEN, owner="x:1")
    assert not leases.claim_retry(trigger_id=first, fire_time=WHEN, owner="x:2")
    second = leases.add_retry(trigger_id=first, fire_time=WHEN, owner="x:1", max_retries=2, backoff_seconds=3600, reason="r")
    assert second == "k:t:downskill#retry2"
    assert leases.due_retries() == []  # its backoff has not passed
    assert leases.add_retry(trigger_id=second, fire_time=WHEN, owner="x:1", max_retries=2, backoff_seconds=0, reason="r") is None


def _store_job(scheduler, job_id: str):  # noqa: ANN001, ANN202
    return scheduler.get_job(job_id), scheduler._lookup_jobstore("default")


def test_run_loop_write_back_never_rewinds_overwrites_or_crashes(migrated_db: str, apply_policy) -> None:  # noqa: ANN001
    apply_policy("k1", '- {name: n, kind: cron, cron: "0 3 * * *", plan: downskill}')
    sync()
    with open_scheduler() as scheduler:
        job, store = _store_job(scheduler, "k1:n:downskill")
        stale = job  # what a second scheduler loaded
        original = job.next_run_time
        later = original + timedelta(days=1)
        job._modify(next_run_time=later)
        store.update_job(job)  # the first scheduler advances it
        stale._modify(next_run_time=original)
        store.update_job(stale)  # a late scheduler writes back an older time: ignored
        assert scheduler.get_job("k1:n:downskill").next_run_time == later

    apply_policy("k1", '- {name: n, kind: cron, cron: "30 4 * * *", plan: downskill}')
    sync()  # replaced: a new spec
    with open_scheduler() as scheduler:
        current = scheduler.get_job("k1:n:downskill")
        assert current.kwargs["spec"] != stale.kwargs["spec"]
        store = scheduler._lookup_jobstore("default")
        stale._modify(next_run_time=current.next_run_time + timedelta(days=30))
        store.update_job(stale)  # stale definition, later time: still ignored
        assert scheduler.get_job("k1:n:downskill").trigger.fields[5].expressions[0].first == 4  # hour 4
        scheduler.remove_job("k1:n:downskill")
        store.update_job(stale)  # gone: no JobLookupError from the run loop
        store.remove_job("k1:n:downskill")  # removed twice (two schedulers, one-shot job): no error
        assert scheduler.get_jobs() == []


def test_shutting_down_leaves_due_fires_to_the_next_scheduler(migrated_db: str, apply_policy) -> None:  # noqa: ANN001
    """APScheduler 3's loop runs once more after ``shutdown()``, with the executors already
    stopped: a closed store hands out nothing, so a due fire is not advanced past (lost)."""
    apply_policy("k1", '- {name: n, kind: cron, cron: "0 3 * * *", plan: downskill}')
    sync()
    due = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    with open_scheduler() as scheduler:  # paused, then shut down, as `sync` and `list` do
        job, store = _store_job(scheduler, "k1:n:downskill")
        job._modify(next_run_time=due)
        store.replace_job(job)
    with open_scheduler() as scheduler:
        assert scheduler.get_job("k1:n:downskill").next_run_time == due


def test_alembic_leaves_apscheduler_jobs_alone(db_url: str, apply_policy) -> None:  # noqa: ANN001
    from alembic import command

    upgrade(db_url)
    apply_policy("k1", '- {name: n, kind: cron, cron: "0 3 * * *", plan: downskill}')
    sync()
    engine = get_engine(db_url)

    def jobs() -> list:
        with engine.connect() as conn:
            return conn.execute(text("SELECT id, next_run_time FROM apscheduler_jobs")).all()

    before = jobs()
    assert [row[0] for row in before] == ["k1:n:downskill"]
    command.check(alembic_config(db_url))  # autogenerate through our env.py sees no difference
    downgrade(db_url, "base")
    assert "apscheduler_jobs" in inspect(engine).get_table_names() and jobs() == before
    upgrade(db_url)
    assert jobs() == before
    command.check(alembic_config(db_url))


@pytest.mark.parametrize("late_minutes", [5])
def test_fires_missed_while_down(migrated_db: str, apply_policy, late_minutes: int) -> None:  # noqa: ANN001
    """Within the grace: the missed fires run once (coalesced); beyond it: a `missed` lease row."""
    from tests.scheduler.handlers import db_job

    from kernel_lifecycle.scheduler.service import run_service

    apply_policy("k1", '- {name: n, kind: cron, cron: "* * * * *", plan: downskill}')
    apply_policy("k2", '- {name: n, kind: cron, cron: "* * * * *", plan: downskill}')
    sync(misfire_grace=3600)
    second = datetime.now(timezone.utc).second
    if second < 3 or second > 45:  # keep the run away from a minute boundary (one more fire)
        time.sleep((63 - second) % 60)
    now = datetime.now(timezone.utc)
    with open_scheduler() as scheduler:
        store = scheduler._lookup_jobstore("default")
        for job_id, grace in (("k1:n:downskill", 3600), ("k2:n:downskill", 1)):
            job = scheduler.get_job(job_id)
            # as if the scheduler had been down for `late_minutes`
            job._modify(next_run_time=now - timedelta(minutes=late_minutes), misfire_grace_time=grace)
            store.replace_job(job)
    run_service(handler=db_job, duration=2.5, poll=0.2, install_signals=False)
    with session_scope() as session:
        rows = {r.trigger_id: list() for r in session.scalars(select(SchedulerLease))}
        for r in session.scalars(select(SchedulerLease)):
            rows[r.trigger_id].append(r)
    (ran,) = rows["k1:n:downskill"]  # five missed minutes, one run
    assert ran.status == "done" and ran.job_id
    latest_due = now.replace(second=0, microsecond=0)
    assert leases.as_utc(ran.fire_time) == latest_due
    (missed,) = rows["k2:n:downskill"]
    assert missed.status == "missed" and "misfire grace" in missed.message and missed.job_id is None
    assert leases.as_utc(missed.fire_time) == latest_due


def test_failed_fire_retries_by_the_rule_then_stops(migrated_db: str, apply_policy) -> None:  # noqa: ANN001
    from tests.scheduler.handlers import failing_job

    from kernel_lifecycle.db.models import Job
    from kernel_lifecycle.scheduler.service import run_service

    # yearly, forced due now: a minute cron could fire again inside the 3 s window
    apply_policy("k1", '- {name: n, kind: cron, cron: "0 0 1 1 *", plan: downskill, retry: {max_retries: 1, backoff_seconds: 0.5}}')
    sync()
    with open_scheduler() as scheduler:
        store = scheduler._lookup_jobstore("default")
        job = scheduler.get_job("k1:n:downskill")
        job._modify(next_run_time=datetime.now(timezone.utc))
        store.replace_job(job)
    # the fire, its 0.5 s backoff and the retry: ~1 s here, ~2 s on a loaded CI machine
    summary = run_service(handler=failing_job, duration=8, poll=0.2, install_signals=False)
    with session_scope() as session:
        rows = sorted(session.scalars(select(SchedulerLease)), key=lambda r: r.trigger_id)
        jobs = {j.id: j for j in session.scalars(select(Job))}
    assert [(r.trigger_id, r.status) for r in rows] == [("k1:n:downskill", "failed"), ("k1:n:downskill#retry1", "failed")]
    assert rows[0].fire_time == rows[1].fire_time
    assert all("boom (test)" in r.message and jobs[r.job_id].state == "failed" for r in rows)
    assert [o["outcome"] for o in summary.outcomes] == ["failed", "failed"]
    assert summary.outcomes[0]["retry"] == "k1:n:downskill#retry1" and summary.outcomes[1]["retry"] is None
