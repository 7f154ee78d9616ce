"""Exactly-once fires: one ``kl_scheduler_leases`` row per (trigger, scheduled fire time).

APScheduler 3 does not coordinate several schedulers sharing one job store: each loads the same
due jobs and would run them. Before running a fire, a scheduler INSERTs the lease row; the
primary key (trigger_id, fire_time) lets exactly one INSERT win (on PostgreSQL the second blocks
until the first commits, then fails with a unique violation). The loser skips the fire.

Statuses: ``running`` (a process runs it), ``done``, ``failed``, ``missed`` (never ran: outside
the misfire grace, or the previous fire still running) and ``pending`` (a retry waiting for its
backoff; for a pending row ``acquired_at`` is the time it becomes due, and it is overwritten when
a process claims it).

A ``running`` lease is renewed by its owner every third of ``KL_SCHEDULER_LEASE_SECONDS``
(``acquired_at`` moves: for a running row it is when its owner last took or renewed it). A lease
that another scheduler has watched unchanged for a whole lease time has lost its owner (a host
that died, kill -9 on another machine): that scheduler fails it and queues its takeover. The watch
is timed on the watcher's own clock, from its own reads, so clock skew between hosts and a
database outage (nobody reads, nobody renews) cannot expire a live lease; the bound: a fire whose
scheduler died is taken over within two lease times. A scheduler cut off from the database for
longer than the lease while others reach it can have its fire run a second time.

Retries are lease rows of their own: trigger id ``<trigger>#retry<n>`` with the *original* fire
time, so the attempt number is in the key and two schedulers recovering the same failure can
only ever add one retry n.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.db.models import SchedulerLease, utcnow
from kernel_lifecycle.db.repo import UNFINISHED, job_for_run, owner_alive, transition
from kernel_lifecycle.settings import get_settings

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
    """End a running lease with its outcome; one failed meanwhile (taken over) keeps that record."""
    with session_scope() as session:
        row = session.get(SchedulerLease, (trigger_id, as_utc(fire_time)))
        if row is None or row.status != "running":
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


def renew(*, keys: list[tuple[str, datetime]], owner: str) -> list[tuple[str, datetime]]:
    """Renew this process's running leases; return the ones it no longer holds (taken over)."""
    lost = []
    with session_scope() as session:
        for trigger_id, fire_time in keys:
            result = session.execute(
                update(SchedulerLease)
                .where(
                    SchedulerLease.trigger_id == trigger_id,
                    SchedulerLease.fire_time == as_utc(fire_time),
                    SchedulerLease.status == "running",
                    SchedulerLease.owner == owner,
                )
                .values(acquired_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                lost.append((trigger_id, fire_time))
    return lost


@dataclass
class StaleWatch:
    """Other processes' running leases as this process last read them: key -> (acquired_at,
    when this process first read that value, on its monotonic clock)."""

    seen: dict[tuple[str, datetime], tuple[datetime, float]] = field(default_factory=dict)

    def expired(self, *, lease_seconds: float, owner: str) -> dict[tuple[str, datetime], datetime]:
        """The running leases of others left unrenewed for ``lease_seconds`` of our watching,
        with the ``acquired_at`` we watched (the takeover's compare-and-set)."""
        now = time.monotonic()
        with session_scope() as session:
            rows = session.scalars(
                select(SchedulerLease).where(SchedulerLease.status == "running", SchedulerLease.owner != owner)
            ).all()
            current = {(r.trigger_id, as_utc(r.fire_time)): as_utc(r.acquired_at) for r in rows}
        watched = {}
        for key, acquired in current.items():
            last = self.seen.get(key)
            watched[key] = last if last is not None and last[0] == acquired else (acquired, now)
        self.seen = watched
        return {key: acquired for key, (acquired, since) in watched.items() if now - since >= lease_seconds}


@dataclass(frozen=True)
class Orphan:
    trigger_id: str
    fire_time: datetime
    job_id: str | None
    message: str
    run: str | None = None  # the job's MLflow run


def fail_orphaned_leases(*, reason: str, expired: dict[tuple[str, datetime], datetime] | None = None) -> list[Orphan]:
    """Mark ``running`` leases of dead processes on this host, and those in ``expired``
    (``StaleWatch.expired``), failed; return the ones *we* failed.

    The UPDATE names status='running' (and for an expired lease the ``acquired_at`` watched, so
    a renewal in between keeps it), so of two schedulers recovering together only one fails (and
    retries) each lease. The job a fire started is found by its run id; still unfinished (its
    process was on the host that died), it is failed with the lease.
    """
    expired = expired or {}
    orphans: list[Orphan] = []
    with session_scope() as session:
        rows = session.scalars(select(SchedulerLease).where(SchedulerLease.status == "running")).all()
        candidates = []
        for r in rows:
            key = (r.trigger_id, as_utc(r.fire_time))
            if key in expired:
                candidates.append((r.trigger_id, r.fire_time, r.owner, r.job_id, expired[key]))
            elif not owner_alive(r.owner):
                candidates.append((r.trigger_id, r.fire_time, r.owner, r.job_id, None))
    for trigger_id, fire_time, owner, job_id, watched in candidates:
        with session_scope() as session:
            job = job_for_run(session, run_id(trigger_id, as_utc(fire_time)))
            job_id = job_id or (job.id if job else None)
            why = reason if watched is None else f"{reason}: its lease was not renewed for {get_settings().scheduler_lease_seconds:g} s"
            detail = f"; job {job_id} {job.state}: {job.error}" if job is not None and job.state not in UNFINISHED else (
                f"; job {job_id} failed with it" if job is not None else "; no job was started")
            message = f"{why} (owner {owner}){detail}"[:2000]
            conditions = [
                SchedulerLease.trigger_id == trigger_id,
                SchedulerLease.fire_time == fire_time,
                SchedulerLease.status == "running",
            ]
            if watched is not None:
                conditions.append(SchedulerLease.acquired_at == watched)
            result = session.execute(
                update(SchedulerLease)
                .where(*conditions)
                .values(status="failed", job_id=job_id, released_at=utcnow(), message=message)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                if job is not None and job.state in UNFINISHED:
                    transition(session, job=job, to_state="failed", message=f"{why} (owner {owner})")
                orphans.append(Orphan(trigger_id, as_utc(fire_time), job_id, message, job.mlflow_run_id if job is not None else None))
    return orphans


def fired_before(*, trigger_id: str) -> bool:
    """Whether any lease (any fire time, any status) exists for this trigger: a one-shot guard."""
    with session_scope() as session:
        return (
            session.scalars(select(SchedulerLease.trigger_id).where(SchedulerLease.trigger_id == trigger_id).limit(1)).first()
            is not None
        )

