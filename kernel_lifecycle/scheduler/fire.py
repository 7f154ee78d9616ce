"""One fire of a trigger: take the lease, run the plan, release the lease with the outcome.

:func:`fire` is what APScheduler stores (by reference, ``kernel_lifecycle.scheduler.fire:fire``)
with keyword arguments naming the kernel, plan and retry rule; the work itself is a *handler*
chosen by the running process, by default the lead's ``kernel_lifecycle.pipeline:run_plan``,
imported at fire time so importing the scheduler stays cheap.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.db.models import Job
from kernel_lifecycle.scheduler import leases

log = logging.getLogger("kernel_lifecycle.scheduler")

DEFAULT_HANDLER = "kernel_lifecycle.pipeline:run_plan"
Handler = Callable[..., Any]

_handler_ref = DEFAULT_HANDLER
_lock = threading.Lock()


@dataclass
class InFlight:
    """The fires this process is running now, so a stop can fail them cleanly."""

    fires: dict[tuple[str, datetime], str] = field(default_factory=dict)  # -> run id
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    active: int = 0  # fires between entry and exit, lease taken or not: a stop waits for them
    stopping: bool = False  # set at stop: due retries are left pending for the next scheduler
    # ``--once``: the service's stop event, set by the first finished fire itself so the service
    # pauses within milliseconds (polling left time for the next tick to start a second fire)
    stop_when_finished: threading.Event | None = None


STATE = InFlight()


def set_handler(ref: str | Handler) -> None:
    """``module:function`` (or a callable, in-process) that runs a plan: ``(kernel, plan, *, trigger_id, actor)``."""
    global _handler_ref
    _handler_ref = ref


def resolve_handler(ref: str | Handler | None = None) -> Handler:
    ref = ref or _handler_ref
    if callable(ref):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _job_of(run: str) -> Job | None:
    with session_scope() as session:
        return repo.job_for_run(session, run)


def fire(
    *,
    trigger_id: str,
    kernel: str,
    plan: str,
    max_retries: int = 0,
    backoff_seconds: float = 60.0,
    spec: str = "",
    scheduled_fire_time: datetime | None = None,
    claimed: bool = False,
) -> dict[str, Any]:
    """Run one fire exactly once across schedulers; returns the outcome (also logged).

    ``claimed``: the lease is already ours (a retry claimed from ``pending``).
    """
    with _lock:
        STATE.active += 1
    try:
        return _fire(trigger_id, kernel, plan, max_retries, backoff_seconds, scheduled_fire_time, claimed)
    finally:
        with _lock:
            STATE.active -= 1


def _fire(
    trigger_id: str,
    kernel: str,
    plan: str,
    max_retries: int,
    backoff_seconds: float,
    scheduled_fire_time: datetime | None,
    claimed: bool,
) -> dict[str, Any]:
    if scheduled_fire_time is None:  # APScheduler's own executors do not pass it
        raise RuntimeError("fire() runs under LeaseExecutor, which passes scheduled_fire_time")
    owner = repo.process_owner()
    when = leases.as_utc(scheduled_fire_time)
    run = leases.run_id(trigger_id, when)
    outcome: dict[str, Any] = {"trigger_id": trigger_id, "fire_time": when.isoformat(), "kernel": kernel, "plan": plan}
    if not claimed and not leases.try_acquire(trigger_id=trigger_id, fire_time=when, owner=owner):
        outcome.update(outcome="skipped", job_id=None, message="lease held by another scheduler")
        _log(outcome)
        return outcome
    with _lock:
        STATE.fires[(trigger_id, when)] = run
    log.info("fire trigger=%s fire_time=%s outcome=started run=%s", trigger_id, when.isoformat(), run)
    try:
        result = resolve_handler()(kernel, plan, trigger_id=run, actor="scheduler")
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded on the lease, then re-raised
        job = _job_of(run)
        reason = f"{type(exc).__name__}: {exc}".strip()[:1500]
        with _lock:
            still_ours = STATE.fires.pop((trigger_id, when), None) is not None
        if still_ours:  # a stop that timed out has failed this lease already
            leases.release(trigger_id=trigger_id, fire_time=when, status="failed", job_id=job.id if job else None, message=reason)
            retry = leases.add_retry(
                trigger_id=trigger_id,
                fire_time=when,
                owner=owner,
                max_retries=max_retries,
                backoff_seconds=backoff_seconds,
                reason=reason,
            )
        else:
            retry = None
        outcome.update(outcome="failed", job_id=job.id if job else None, message=reason, retry=retry)
        _log(outcome)
        if isinstance(exc, Exception):
            return outcome  # recorded: APScheduler need not log a second traceback
        raise
    job = _job_of(run)
    job_id = (job.id if job else None) or (result.get("job_id") if isinstance(result, dict) else None)
    summary = _summary(result)
    with _lock:
        still_ours = STATE.fires.pop((trigger_id, when), None) is not None
    if still_ours:  # else a stop that timed out failed it already; that record stands
        leases.release(trigger_id=trigger_id, fire_time=when, status="done", job_id=job_id, message=summary)
    outcome.update(outcome="done", job_id=job_id, message=summary)
    _log(outcome)
    return outcome


def _summary(result: Any) -> str:
    if not isinstance(result, dict):
        return "done"
    parts = [f"{k}={result[k]}" for k in ("version", "gate", "promoted", "refused") if k in result]
    return " ".join(parts) or "done"


def _ended(outcome: dict[str, Any]) -> bool:
    """Whether the fire ran to an end (done or failed), not just skipped or missed."""
    return outcome["outcome"] in ("done", "failed")


def finished() -> bool:
    """Whether a fire of this service has run to an end."""
    with _lock:
        return any(map(_ended, STATE.outcomes))


def _log(outcome: dict[str, Any]) -> None:
    with _lock:
        STATE.outcomes.append(outcome)
        if _ended(outcome) and STATE.stop_when_finished is not None:
            STATE.stop_when_finished.set()
    log.info(
        "fire trigger=%s fire_time=%s outcome=%s job=%s%s",
        outcome["trigger_id"],
        outcome["fire_time"],
        outcome["outcome"],
        outcome.get("job_id") or "-",
        f" retry={outcome['retry']}" if outcome.get("retry") else "",
        extra={"outcome": outcome},
    )
    if outcome.get("message") and outcome["outcome"] != "done":
        log.info("  %s", outcome["message"])
