"""Exactly-once fires: one ``kl_scheduler_leases`` row per (trigger, scheduled fire time).

APScheduler 3 does not coordinate several schedulers sharing one job store: each loads the same
due jobs and would run them. Before running a fire, a scheduler INSERTs the lease row; the
primary key (trigger_id, fire_time) lets exactly one INSERT win (on PostgreSQL the second blocks
until the first commits, then fails with a unique violation). The loser skips the fire.

Statuses: ``running`` (a process runs it), ``done``, ``failed``, ``missed`` (never ran: outside
the misfire grace, or the previous fire still running) and ``pending`` (a retry waiting for its
backoff; for a pending row ``acquired_at`` is the time it becomes due, and it is overwritten when
a process claims it).

Retries are lease rows of their own: trigger id ``<trigger>#retry<n>`` with the *original* fire
time, so the attempt number is in the key and two schedulers recovering the same failure can
only ever add one retry n.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.db.repo import job_for_run, owner_alive
from kernel_lifecycle.db.models import SchedulerLease, utcnow

RETRY_MARK = "#retry"
_RETRY = re.compile(r"^(?P<base>.*)#retry(?P<n>\d+)$")


def as_utc(value: datetime) -> datetime:
    """UTC, tz-aware, whole microseconds as stored. SQLite returns naive datetimes: they are UTC.

    Fire times are stored in UTC so the primary key compares equal on SQLite (which drops the
    offset) and PostgreSQL."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def run_id(trigger_id: str, fire_time: datetime) -> str:
    """The id a fire hands to the job (``kl_jobs.trigger_id``): names the trigger *and* the fire."""
    return f"{trigger_id}@{as_utc(fire_time).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def split_retry(trigger_id: str) -> tuple[str, int]:
    """``'k:t:p#retry2'`` -> ``('k:t:p', 2)``; a first attempt is attempt 0."""
    match = _RETRY.match(trigger_id)
    if match is None:
        return trigger_id, 0
    return match["base"], int(match["n"])


def retry_id(base: str, attempt: int) -> str:
    return f"{base}{RETRY_MARK}{attempt}"


@dataclass(frozen=True)
class LeaseView:
    trigger_id: str
    fire_time: datetime
    owner: str
    status: str
    job_id: str | None
    acquired_at: datetime
    released_at: datetime | None
    message: str | None

    @classmethod
    def of(cls, row: SchedulerLease) -> "LeaseView":
        return cls(
            trigger_id=row.trigger_id,
            fire_time=as_utc(row.fire_time),
            owner=row.owner,
            status=row.status,
            job_id=row.job_id,
            acquired_at=as_utc(row.acquired_at),
            released_at=as_utc(row.released_at) if row.released_at else None,
            message=row.message,
        )


def _insert(row: SchedulerLease) -> bool:
    try:
        with session_scope() as session:
            session.add(row)
    except IntegrityError:
        return False
    return True


def try_acquire(*, trigger_id: str, fire_time: datetime, owner: str) -> bool:
    """Take the lease of one fire; False when another process holds (or held) it."""
    return _insert(
        SchedulerLease(trigger_id=trigger_id, fire_time=as_utc(fire_time), owner=owner, status="running")
    )


def release(
    *, trigger_id: str, fire_time: datetime, status: str, job_id: str | None = None, message: str | None = None
) -> None:
    with session_scope() as session:
        row = session.get(SchedulerLease, (trigger_id, as_utc(fire_time)))
        if row is None:
            return
        row.status = status
        row.job_id = job_id or row.job_id
        row.message = message
        row.released_at = utcnow()


def record_missed(*, trigger_id: str, fire_time: datetime, owner: str, message: str) -> bool:
    """A fire that will never run; False when another scheduler recorded (or ran) it already."""
    return _insert(
        SchedulerLease(
            trigger_id=trigger_id,
            fire_time=as_utc(fire_time),
            owner=owner,
            status="missed",
            released_at=utcnow(),
            message=message,
        )
    )


def add_retry(
    *, trigger_id: str, fire_time: datetime, owner: str, max_retries: int, backoff_seconds: float, reason: str
) -> str | None:
    """Queue the next attempt of a failed fire after its backoff; the retry's id, or None.

    None when the retry rule is exhausted, or another process queued this attempt already.
    """
    base, attempt = split_retry(trigger_id)
    if attempt >= max_retries:
        return None
    nxt = retry_id(base, attempt + 1)
    due = utcnow() + timedelta(seconds=backoff_seconds)
    ok = _insert(
        SchedulerLease(
            trigger_id=nxt,
            fire_time=as_utc(fire_time),
            owner=owner,
            status="pending",
            acquired_at=due,
            message=f"retry {attempt + 1} of {max_retries} after: {reason}"[:2000],
        )
    )
    return nxt if ok else None


def due_retries(*, now: datetime | None = None) -> list[LeaseView]:
    now = now or utcnow()
    with session_scope() as session:
        rows = session.scalars(
            select(SchedulerLease).where(SchedulerLease.status == "pending", SchedulerLease.acquired_at <= now)
        ).all()
        return [LeaseView.of(r) for r in rows]


def claim_retry(*, trigger_id: str, fire_time: datetime, owner: str) -> bool:
    """Turn a due pending retry into a running lease; only one process's UPDATE matches."""
    with session_scope() as session:
        result = session.execute(
            update(SchedulerLease)
            .where(
                SchedulerLease.trigger_id == trigger_id,
                SchedulerLease.fire_time == as_utc(fire_time),
                SchedulerLease.status == "pending",
            )
            .values(status="running", owner=owner, acquired_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


@dataclass(frozen=True)
class Orphan:
    trigger_id: str
    fire_time: datetime
    job_id: str | None
    message: str


def fail_orphaned_leases(*, reason: str) -> list[Orphan]:
    """Mark ``running`` leases of dead processes on this host failed; return the ones *we* failed.

    The UPDATE names status='running', so of two schedulers restarting together only one fails
    (and retries) each lease. The job a fire started is found by its run id.
    """
    orphans: list[Orphan] = []
    with session_scope() as session:
        rows = session.scalars(select(SchedulerLease).where(SchedulerLease.status == "running")).all()
        candidates = [(r.trigger_id, r.fire_time, r.owner, r.job_id) for r in rows if not owner_alive(r.owner)]
    for trigger_id, fire_time, owner, job_id in candidates:
        with session_scope() as session:
            job = job_for_run(session, run_id(trigger_id, as_utc(fire_time)))
            job_id = job_id or (job.id if job else None)
            detail = f"; job {job_id} {job.state}: {job.error}" if job is not None else "; no job was started"
            message = f"{reason} (owner {owner}){detail}"[:2000]
            result = session.execute(
                update(SchedulerLease)
                .where(
                    SchedulerLease.trigger_id == trigger_id,
                    SchedulerLease.fire_time == fire_time,
                    SchedulerLease.status == "running",
                )
                .values(status="failed", job_id=job_id, released_at=utcnow(), message=message)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                orphans.append(Orphan(trigger_id, as_utc(fire_time), job_id, message))
    return orphans


def fired_before(*, trigger_id: str) -> bool:
    """Whether any lease (any fire time, any status) exists for this trigger: a one-shot guard."""
    with session_scope() as session:
        return (
            session.scalars(select(SchedulerLease.trigger_id).where(SchedulerLease.trigger_id == trigger_id).limit(1)).first()
            is not None
        )

