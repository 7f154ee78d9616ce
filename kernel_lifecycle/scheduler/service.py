"""`scheduler run`: the long-running service around a BackgroundScheduler.

Every ``KL_GUARD_INTERVAL`` seconds it also runs the guard's ``check --repair`` (alias moves made
outside the lifecycle, put back and audited). Start (and every ``recover_every`` seconds): fail what a dead scheduler on this host left running (its jobs via ``repo.fail_orphaned_jobs``, its
leases via ``leases.fail_orphaned_leases``) and queue their retries by the policy's rule. Then
run: APScheduler submits due fires from the shared store to :class:`LeaseExecutor`; the main
loop wakes the scheduler every ``poll`` seconds (other processes' ``sync`` edits the store, and
APScheduler 3 only re-reads it when it wakes up) and starts retries whose backoff has passed.
Every third of ``KL_SCHEDULER_LEASE_SECONDS`` it renews the leases of its running fires and
takes over the fires of others whose lease it watched go unrenewed for a whole lease time
(``leases.StaleWatch``: a scheduler on another host died).
Stop (SIGTERM/SIGINT, ``--for``, ``--once``): take no new fires, let the current one finish for
up to ``stop_timeout`` seconds, else fail its job and lease with the reason and queue its retry.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import SQLAlchemyError

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import ensure_current, redact, session_scope
from kernel_lifecycle.errors import KernelLifecycleError
from kernel_lifecycle.guard.aliases import check as guard_check
from kernel_lifecycle.registry.tracking import client as mlflow_client
from kernel_lifecycle.scheduler import fire as fire_mod
from kernel_lifecycle.scheduler import leases
from kernel_lifecycle.scheduler.store import LeaseExecutor, SharedJobStore
from kernel_lifecycle.scheduler.sync import desired_jobs
from kernel_lifecycle.settings import get_settings

if TYPE_CHECKING:
    from types import FrameType

    from apscheduler.events import JobExecutionEvent, JobSubmissionEvent

log = logging.getLogger("kernel_lifecycle.scheduler")

ORPHAN_REASON = "the scheduler process running it stopped (crash or kill)"
RETRY_FUNC = "kernel_lifecycle.scheduler.service:run_retry"

_scheduler: BackgroundScheduler | None = None  # the running BackgroundScheduler of this process (retries look jobs up in it)


@dataclass
class RunSummary:
    recovered_jobs: list[str] = field(default_factory=list)
    recovered_leases: list[str] = field(default_factory=list)
    retries_queued: list[str] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)  # fires failed at stop because they did not finish
    stopped_by: str = ""
    guard_reverted: list[dict[str, Any]] = field(default_factory=list)  # alias moves the guard put back


def _retry_rule(base_id: str) -> tuple[int, float] | None:
    """The retry rule of a trigger: from its stored job, else from the active policy."""
    if _scheduler is not None:
        job = _scheduler.get_job(base_id, "default")
        if job is not None:
            return int(job.kwargs.get("max_retries", 0)), float(job.kwargs.get("backoff_seconds", 60.0))
    try:
        wanted, _ = desired_jobs()
    except (KernelLifecycleError, SQLAlchemyError) as exc:  # the DB is unreachable or behind: no policy to ask
        log.warning("no retry for %s: the active policies could not be read: %s", base_id, _first_line(exc))
        return None
    tj = wanted.get(base_id)
    return (tj.max_retries, tj.backoff_seconds) if tj else None


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when the message is empty)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _kernel_plan(trigger_id: str) -> tuple[str, str]:
    base, _ = leases.split_retry(trigger_id)
    kernel, _, rest = base.partition(":")
    return kernel, rest.rpartition(":")[2]


def recover(*, owner: str, expired: dict[tuple[str, datetime], datetime] | None = None) -> RunSummary:
    """Fail what dead scheduler processes on this host left running, and the fires whose lease
    expired (``expired``: another host's scheduler died), and queue their takeover: a fire that
    never ran to its end gets one more attempt even where the policy's rule retries none."""
    summary = RunSummary()
    with session_scope() as session:
        failed = repo.fail_orphaned_jobs(session, reason=ORPHAN_REASON)
        summary.recovered_jobs = [j.id for j in failed]
        runs = [j.mlflow_run_id for j in failed if j.mlflow_run_id]
    orphans = leases.fail_orphaned_leases(reason=ORPHAN_REASON, expired=expired)
    _terminate_runs(runs + [o.run for o in orphans if o.run and o.run not in runs])
    for orphan in orphans:
        summary.recovered_leases.append(f"{orphan.trigger_id}@{orphan.fire_time.isoformat()}")
        log.info("recovered fire trigger=%s fire_time=%s outcome=failed job=%s: %s", orphan.trigger_id, orphan.fire_time.isoformat(), orphan.job_id or "-", orphan.message)
        rule = _retry_rule(leases.split_retry(orphan.trigger_id)[0])
        if rule is None:
            continue
        attempt = leases.split_retry(orphan.trigger_id)[1]
        queued = leases.add_retry(
            trigger_id=orphan.trigger_id, fire_time=orphan.fire_time, owner=owner, max_retries=max(rule[0], attempt + 1),
            backoff_seconds=rule[1], reason=orphan.message,
        )
        if queued:
            summary.retries_queued.append(queued)
            log.info("queued %s in %.0f s", queued, rule[1])
    return summary


def _terminate_runs(run_ids: list[str]) -> None:
    """Mark the MLflow runs of failed jobs FAILED (best effort: the DB row is the record)."""
    if not run_ids:
        return
    try:
        client = mlflow_client()
        for run_id in run_ids:
            client.set_terminated(run_id, status="FAILED")
    # broad on purpose: whatever the MLflow store raises (unreachable, unknown run, no access; its
    # exception classes would import mlflow here) must not stop the recovery of the DB rows
    except Exception as exc:  # noqa: BLE001
        log.warning("could not mark MLflow runs %s failed: %s", run_ids, exc)


def run_retry(*, trigger_id: str, fire_time: str, scheduled_fire_time: datetime | None = None) -> dict[str, Any] | None:
    """A due retry (a ``pending`` lease): claim it, then fire it like any fire."""
    when = leases.as_utc(datetime.fromisoformat(fire_time))
    owner = repo.process_owner()
    if fire_mod.STATE.stopping:
        return None  # still pending: the next scheduler to run claims it
    if not leases.claim_retry(trigger_id=trigger_id, fire_time=when, owner=owner):
        return None  # another scheduler claimed it
    kernel, plan = _kernel_plan(trigger_id)
    rule = _retry_rule(leases.split_retry(trigger_id)[0])
    if rule is None:
        leases.release(trigger_id=trigger_id, fire_time=when, status="missed", message="the trigger was removed before its retry ran")
        return None
    return fire_mod.fire(
        trigger_id=trigger_id,
        kernel=kernel,
        plan=plan,
        max_retries=rule[0],
        backoff_seconds=rule[1],
        scheduled_fire_time=when,
        claimed=True,
    )


def _on_missed(event: JobExecutionEvent | JobSubmissionEvent) -> None:
    """A missed fire (``JobExecutionEvent``) or one skipped because the previous still ran
    (``JobSubmissionEvent``, several scheduled times): recorded as ``missed`` leases."""
    if event.job_id.startswith("retry:"):
        return
    owner = repo.process_owner()
    if event.code == EVENT_JOB_MAX_INSTANCES:
        times, message = event.scheduled_run_times, "not run: the previous fire of this trigger was still running"
    else:
        times, message = [event.scheduled_run_time], "not run: the scheduler was not running within the misfire grace time"
    for when in times:
        if leases.record_missed(trigger_id=event.job_id, fire_time=when, owner=owner, message=message):
            log.info("fire trigger=%s fire_time=%s outcome=missed job=-: %s", event.job_id, leases.as_utc(when).isoformat(), message)


def build_scheduler(url: str) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        jobstores={"default": SharedJobStore(url), "local": MemoryJobStore()},
        # one fire at a time per process: plans train models on the same few cores
        executors={"default": LeaseExecutor(max_workers=1)},
        timezone="UTC",
        # retries run from the local store; a store read failure is retried quickly
        jobstore_retry_interval=5,
    )
    scheduler.add_listener(_on_missed, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    return scheduler


def run_service(
    *,
    handler: str | Callable[..., Any] | None = None,
    once: bool = False,
    duration: float | None = None,
    poll: float = 1.0,
    stop_timeout: float = 30.0,
    stop_event: threading.Event | None = None,
    install_signals: bool = True,
    recover_every: float = 30.0,
) -> RunSummary:
    """Run the scheduler until a signal, ``duration`` seconds, or (``once``) one finished fire.

    The job store, the leases and the jobs all live in the configured lifecycle DB."""
    global _scheduler
    url = get_settings().db_url
    ensure_current(url)
    fire_mod.set_handler(handler or fire_mod.DEFAULT_HANDLER)
    owner = repo.process_owner()
    stop = stop_event or threading.Event()
    reason = {"by": ""}

    def _signal(signum: int, _frame: FrameType | None) -> None:
        reason["by"] = signal.Signals(signum).name
        stop.set()

    previous = {}
    if install_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _signal)

    fire_mod.STATE.outcomes.clear()
    fire_mod.STATE.stopping = False
    fire_mod.STATE.stop_when_finished = stop if once else None
    summary = recover(owner=owner)
    scheduler = build_scheduler(url)
    _scheduler = scheduler
    scheduler.start()
    log.info("scheduler %s started on %s: %d job(s)", owner, redact(url), len(scheduler.get_jobs("default")))
    started = time.monotonic()
    recovered_at = started
    guard_every = get_settings().guard_interval
    guarded_at = started - guard_every  # the first round checks at once
    queued: set[tuple[str, datetime]] = set()
    lease_seconds = get_settings().scheduler_lease_seconds
    watch, renewed_at = leases.StaleWatch(), started
    try:
        while not stop.is_set():
            try:
                expired = {}
                if time.monotonic() - renewed_at >= lease_seconds / 3:
                    renewed_at = time.monotonic()
                    _renew(owner)
                    expired = watch.expired(lease_seconds=lease_seconds, owner=owner)
                if expired or time.monotonic() - recovered_at >= recover_every:
                    # another scheduler on this host may have died while we run, or one elsewhere
                    # left its lease to expire: heal its fires too
                    recovered_at = time.monotonic()
                    again = recover(owner=owner, expired=expired)
                    summary.recovered_jobs += again.recovered_jobs
                    summary.recovered_leases += again.recovered_leases
                    summary.retries_queued += again.retries_queued
                _queue_due_retries(scheduler, queued)
                if guard_every and time.monotonic() - guarded_at >= guard_every:
                    guarded_at = time.monotonic()
                    summary.guard_reverted += _guard_round()
            # broad on purpose: a database or MLflow blip (or a guard round that fails) must not
            # end a long-running service; the next round retries
            except Exception as exc:  # noqa: BLE001
                log.warning("scheduler housekeeping failed, retrying next round: %s", _first_line(exc))
            if duration is not None and time.monotonic() - started >= duration:
                reason["by"] = f"--for {duration:g}"
                break
            scheduler.wakeup()  # re-read the shared store: `sync` may have changed it
            stop.wait(poll)
        if once and not reason["by"] and fire_mod.finished():
            reason["by"] = "--once"
        summary.stopped_by = reason["by"] or "stop event"
        scheduler.pause()  # no new fires; the current one may finish
        with fire_mod._lock:
            fire_mod.STATE.stopping = True
        deadline = time.monotonic() + stop_timeout
        while fire_mod.STATE.active and time.monotonic() < deadline:
            time.sleep(0.2)
        summary.abandoned = _fail_in_flight(f"the scheduler was stopped ({summary.stopped_by}) before the fire finished", owner)
    finally:
        scheduler.shutdown(wait=False)
        _scheduler = None
        fire_mod.STATE.stop_when_finished = None
        for sig, handler_ in previous.items():
            signal.signal(sig, handler_)
    summary.outcomes = list(fire_mod.STATE.outcomes)
    log.info("scheduler %s stopped (%s): %d fire(s) handled", owner, summary.stopped_by, len(summary.outcomes))
    return summary


def _renew(owner: str) -> None:
    """Renew the leases of the fires this process runs (others take over an unrenewed one)."""
    with fire_mod._lock:
        keys = list(fire_mod.STATE.fires)
    for trigger_id, when in leases.renew(keys=keys, owner=owner):
        log.warning("lease of fire trigger=%s fire_time=%s was taken over by another scheduler", trigger_id, when.isoformat())


def _guard_round() -> list[dict[str, Any]]:
    """`guard check --repair` (webhook deliveries are fire-and-forget: this is the backstop)."""
    result = guard_check(do_repair=True, source="scheduler")
    for drift in result.repaired:
        log.info("guard reverted %s %s: MLflow had %s, the audit says %s", drift.kernel, drift.alias, drift.mlflow_version, drift.audited_version)
    for left in result.remaining:
        log.warning("guard could not revert %s", left)
    return [d.as_dict() for d in result.repaired]


def _queue_due_retries(scheduler: BackgroundScheduler, queued: set[tuple[str, datetime]]) -> None:
    for lease in leases.due_retries():
        key = (lease.trigger_id, lease.fire_time)
        if key in queued:
            continue
        queued.add(key)
        scheduler.add_job(
            RETRY_FUNC,
            trigger="date",
            run_date=datetime.now(timezone.utc),
            id=f"retry:{lease.trigger_id}:{lease.fire_time.isoformat()}",
            kwargs={"trigger_id": lease.trigger_id, "fire_time": lease.fire_time.isoformat()},
            jobstore="local",
            misfire_grace_time=None,  # a due retry runs however late; its claim makes it run once
            coalesce=True,
            max_instances=1,
            replace_existing=True,
        )


def _fail_in_flight(reason: str, owner: str) -> list[str]:
    """Fail the fires still running at stop: their job, their lease, and queue their retry."""
    with fire_mod._lock:
        in_flight = dict(fire_mod.STATE.fires)
        fire_mod.STATE.fires.clear()
    abandoned = []
    runs = []
    for (trigger_id, when), run in in_flight.items():
        with session_scope() as session:
            job = repo.job_for_run(session, run)
            job_id = job.id if job else None
            if job is not None and job.state in repo.UNFINISHED:
                repo.transition(session, job=job, to_state="failed", message=reason)
                if job.mlflow_run_id:
                    runs.append(job.mlflow_run_id)
        leases.release(trigger_id=trigger_id, fire_time=when, status="failed", job_id=job_id, message=reason)
        rule = _retry_rule(leases.split_retry(trigger_id)[0])
        if rule:
            leases.add_retry(trigger_id=trigger_id, fire_time=when, owner=owner, max_retries=rule[0], backoff_seconds=rule[1], reason=reason)
        log.info("fire trigger=%s fire_time=%s outcome=failed job=%s: %s", trigger_id, when.isoformat(), job_id or "-", reason)
        abandoned.append(run)
    _terminate_runs(runs)
    return abandoned
