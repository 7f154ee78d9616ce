"""Active policies -> their triggers -> APScheduler jobs in the shared job store.

``sync`` makes the store match the applied policies: new triggers are added, changed ones
replaced, vanished ones removed. Manual triggers schedule nothing. A policy snapshot that no
longer validates (the schema or the known skills moved on since it was applied) is refused with
its kernel, file and problems, and that kernel's schedule stays exactly as it was; the other
kernels still sync.

Job ids are stable, ``<kernel>:<trigger name or index>:<plan>``, and are the lease trigger ids.
Each job carries a ``spec`` hash of its definition, so ``sync`` replaces only what changed
(keeping the next run time of the rest) and the run loop can tell a stale copy from the current.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import ensure_current, session_scope
from kernel_lifecycle.errors import PolicyError
from kernel_lifecycle.policy.loader import parse_policy
from kernel_lifecycle.policy.schema import Policy, PolicyContext
from kernel_lifecycle.scheduler import leases
from kernel_lifecycle.scheduler.store import SharedJobStore
from kernel_lifecycle.settings import get_settings

FIRE_FUNC = "kernel_lifecycle.scheduler.fire:fire"

# A cron fire is still run when the scheduler comes back within this many seconds of its
# scheduled time (once: coalesce); later than that it is recorded as `missed`, because a
# deprecation run hours late competes with the next regular fire and surprises its owners.
DEFAULT_MISFIRE_GRACE = 3600


@dataclass(frozen=True)
class TriggerJob:
    """One schedulable trigger of one policy."""

    id: str
    kernel: str
    plan: str
    kind: str
    description: str
    definition: dict[str, Any]
    max_retries: int
    backoff_seconds: float

    @property
    def spec(self) -> str:
        return hashlib.sha256(json.dumps(self.definition, sort_keys=True).encode()).hexdigest()[:16]

    def kwargs(self) -> dict[str, Any]:
        return {
            "trigger_id": self.id,
            "kernel": self.kernel,
            "plan": self.plan,
            "max_retries": self.max_retries,
            "backoff_seconds": self.backoff_seconds,
            "spec": self.spec,
        }

    def build_trigger(self) -> DateTrigger | CronTrigger:
        d = self.definition
        zone = ZoneInfo(d["timezone"])
        if self.kind == "sunset":
            day = datetime.fromisoformat(d["date"]).date()
            return DateTrigger(run_date=datetime.combine(day, time(0, 0), tzinfo=zone), timezone=zone)
        minute, hour, day, month, dow = d["cron"].split()
        return CronTrigger(
            second=d.get("second") or "0",
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=dow,
            timezone=zone,
        )

    def job_options(self) -> dict[str, Any]:
        """APScheduler options, chosen deliberately.

        coalesce=True: after downtime several missed cron fires run once, not N times in a row
        (N identical downskills would each gate against the previous one).
        max_instances=1: a fire still running when the next is due does not overlap itself in
        this process (two trainings of one kernel compete for the same cores and aliases); the
        skipped fire is recorded as `missed`. Across processes the lease does this job.
        misfire_grace_time: cron fires run when late by at most the grace; a sunset runs however
        late (None): the skill must be retired even if the scheduler was down on the day, and
        the lease makes it run once.
        """
        grace = None if self.kind == "sunset" else int(self.definition.get("grace", DEFAULT_MISFIRE_GRACE))
        return {"coalesce": True, "max_instances": 1, "misfire_grace_time": grace}


def policy_trigger_jobs(
    policy: Policy, *, second: str | None = None, misfire_grace: int = DEFAULT_MISFIRE_GRACE
) -> list[TriggerJob]:
    """The schedulable triggers of one validated policy (manual ones schedule nothing).

    ``second``: an APScheduler cron ``second`` field added to every cron trigger. Policies only
    express 5-field crontabs (a minute is the finest grain); this exists so tests can fire every
    few seconds through the same construction path (``scheduler sync --test-second``).
    """
    out: list[TriggerJob] = []
    for index, trigger in enumerate(policy.triggers):
        if trigger.kind == "manual":
            continue
        job_id = f"{policy.kernel}:{trigger.name or index}:{trigger.plan}"
        retry = trigger.retry
        if trigger.kind == "cron":
            definition: dict[str, Any] = {"kind": "cron", "cron": trigger.cron, "timezone": trigger.timezone, "plan": trigger.plan}
            if second is not None:
                definition["second"] = second
            if misfire_grace != DEFAULT_MISFIRE_GRACE:
                definition["grace"] = misfire_grace
            description = f"cron {trigger.cron!r} {trigger.timezone}" + (f" second={second}" if second else "")
        elif trigger.kind == "sunset":
            skill = policy.retired(trigger.skill)
            if skill is None:  # cross_check refuses this; guard anyway
                continue
            definition = {"kind": "sunset", "skill": trigger.skill, "date": skill.sunset.isoformat(), "timezone": trigger.timezone, "plan": trigger.plan}
            description = f"sunset of {trigger.skill} on {skill.sunset} {trigger.timezone}"
        else:
            continue
        definition["retry"] = [retry.max_retries, retry.backoff_seconds]
        out.append(
            TriggerJob(
                id=job_id,
                kernel=policy.kernel,
                plan=trigger.plan,
                kind=trigger.kind,
                description=description,
                definition=definition,
                max_retries=retry.max_retries,
                backoff_seconds=retry.backoff_seconds,
            )
        )
    return out


@contextmanager
def open_scheduler(url: str | None = None) -> Iterator[BackgroundScheduler]:
    """A paused BackgroundScheduler on the shared store: to read and edit jobs, never to run them."""
    url = url or get_settings().db_url
    ensure_current(url)
    scheduler = BackgroundScheduler(jobstores={"default": SharedJobStore(url)}, timezone="UTC")
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)


@dataclass
class Refusal:
    kernel: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"kernel {self.kernel} ({self.path}): {self.problem}"


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    already_fired: list[str] = field(default_factory=list)
    kept_refused: list[str] = field(default_factory=list)  # jobs of refused kernels, left as they were
    refused: list[Refusal] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)  # retained skills past their sunset: act on them

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in ("added", "replaced", "removed", "unchanged", "already_fired", "kept_refused", "overdue")}
        out["refused"] = [{"kernel": r.kernel, "path": r.path, "problem": r.problem} for r in self.refused]
        return out


def desired_jobs(
    *, second: str | None = None, misfire_grace: int = DEFAULT_MISFIRE_GRACE, url: str | None = None, overdue: list[str] | None = None,
) -> tuple[dict[str, TriggerJob], list[Refusal]]:
    """Every schedulable trigger of the active policies, and the snapshots that no longer validate.

    A snapshot is read without date rules (it was validated when applied): a sunset that has
    passed since is appended to ``overdue`` as a state to act on, and the triggers keep running.
    """
    with session_scope(url) as session:
        snapshots = [(s.kernel, s.path, s.content, s.sha256) for s in repo.active_policy_snapshots(session)]
    wanted: dict[str, TriggerJob] = {}
    refused: list[Refusal] = []
    for kernel, path, content, sha in snapshots:
        try:
            policy = parse_policy(content, source=path, context=PolicyContext.stored())
        except PolicyError as exc:
            problem = " | ".join(line.strip() for line in str(exc).splitlines()[1:]) or str(exc)
            refused.append(Refusal(kernel, path, f"the applied policy (sha256 {sha[:12]}) no longer validates: {problem}"))
            continue
        if overdue is not None:
            overdue.extend(f"{kernel}: {line}" for line in policy.overdue_sunsets(datetime.now(timezone.utc).date()))
        for job in policy_trigger_jobs(policy, second=second, misfire_grace=misfire_grace):
            wanted[job.id] = job
    return wanted, refused


def sync(*, url: str | None = None, second: str | None = None, misfire_grace: int = DEFAULT_MISFIRE_GRACE) -> SyncReport:
    """Make the job store match the active policies; see the module docstring."""
    overdue: list[str] = []
    wanted, refused = desired_jobs(second=second, misfire_grace=misfire_grace, url=url, overdue=overdue)
    report = SyncReport(refused=refused, overdue=overdue)
    refused_kernels = {r.kernel for r in refused}
    with open_scheduler(url) as scheduler:
        existing = {job.id: job for job in scheduler.get_jobs()}
        for job_id, job in existing.items():
            kernel = (job.kwargs or {}).get("kernel") or job_id.split(":", 1)[0]
            if kernel in refused_kernels:
                report.kept_refused.append(job_id)
            elif job_id not in wanted:
                scheduler.remove_job(job_id)
                report.removed.append(job_id)
        for job_id, tj in sorted(wanted.items()):
            current = existing.get(job_id)
            if current is not None and (current.kwargs or {}).get("spec") == tj.spec:
                report.unchanged.append(job_id)
                continue
            if tj.kind == "sunset" and leases.fired_before(trigger_id=job_id):
                # one-shot: it ran (or was recorded) already; re-adding would run it again
                if current is not None:
                    scheduler.remove_job(job_id)
                report.already_fired.append(job_id)
                continue
            if current is not None:
                scheduler.remove_job(job_id)
            scheduler.add_job(
                FIRE_FUNC,
                trigger=tj.build_trigger(),
                id=job_id,
                name=f"{tj.kernel} {tj.plan}: {tj.description}",
                kwargs=tj.kwargs(),
                **tj.job_options(),
            )
            (report.replaced if current is not None else report.added).append(job_id)
    return report


def scheduled(url: str | None = None) -> list[dict[str, Any]]:
    """The jobs in the store: id, kernel, plan, trigger, next fire time."""
    with open_scheduler(url) as scheduler:
        rows = []
        for job in scheduler.get_jobs():
            kw = job.kwargs or {}
            rows.append(
                {
                    "id": job.id,
                    "kernel": kw.get("kernel"),
                    "plan": kw.get("plan"),
                    "trigger": job.name.partition(": ")[2] or str(job.trigger),
                    "next_fire_time": leases.as_utc(job.next_run_time).isoformat() if job.next_run_time else None,
                    "retry": {"max_retries": kw.get("max_retries"), "backoff_seconds": kw.get("backoff_seconds")},
                }
            )
    return sorted(rows, key=lambda r: r["id"])
