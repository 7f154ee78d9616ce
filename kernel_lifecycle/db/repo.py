"""Repository functions: keyword-only, taking a session; the caller owns the transaction."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kernel_lifecycle.db.models import (
    AliasState,
    Approval,
    AuditEvent,
    GateDecisionRow,
    Job,
    JobEvent,
    PolicySnapshot,
    utcnow,
)
from kernel_lifecycle.errors import JobError, NotFoundError

# queued -> running -> evaluating -> registered; any unfinished state -> failed, or cancelled
# (stopped on request: SIGTERM, Ctrl-C). Jobs that register nothing (evaluate, promote) end in "succeeded".
JOB_TRANSITIONS: dict[str, set[str]] = {
    "queued": {"running", "failed", "cancelled"},
    "running": {"evaluating", "registered", "succeeded", "failed", "cancelled"},
    "evaluating": {"registered", "succeeded", "failed", "cancelled"},
    "registered": set(),
    "succeeded": set(),
    "failed": set(),
    "cancelled": set(),
}
UNFINISHED = ("queued", "running", "evaluating")


def process_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# ---- jobs -------------------------------------------------------------------------------------


def create_job(
    session: Session,
    *,
    kind: str,
    kernel: str,
    params: dict[str, Any] | None = None,
    trigger_id: str | None = None,
    owner: str | None = None,
    executor: str | None = None,
    executor_ref: str | None = None,
) -> Job:
    job = Job(
        kind=kind,
        kernel=kernel,
        state="queued",
        params=params or {},
        trigger_id=trigger_id,
        owner=owner or process_owner(),
        executor=executor,
        executor_ref=executor_ref,
    )
    session.add(job)
    session.flush()
    session.add(JobEvent(job_id=job.id, from_state=None, to_state="queued", message=f"{kind} queued"))
    return job


def transition(session: Session, *, job: Job, to_state: str, message: str | None = None) -> Job:
    allowed = JOB_TRANSITIONS.get(job.state, set())
    if to_state not in allowed:
        raise JobError(f"job {job.id} cannot go from {job.state} to {to_state}")
    session.add(JobEvent(job_id=job.id, from_state=job.state, to_state=to_state, message=message))
    job.state = to_state
    job.updated_at = utcnow()
    if to_state in ("failed", "cancelled"):
        job.error = message
    return job


def get_job(session: Session, *, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        # accept an unambiguous prefix, as people copy short ids from tables ('_' and '%' are
        # characters here, not LIKE wildcards)
        matches = session.scalars(select(Job).where(Job.id.startswith(job_id, autoescape=True)).limit(2)).all() if job_id else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise NotFoundError(f"job id {job_id!r} is the start of several jobs; give more of it (`kernel-lifecycle jobs list`)")
        raise NotFoundError(f"no job {job_id!r}; `kernel-lifecycle jobs list` shows the jobs")
    return job


def list_jobs(session: Session, *, kernel: str | None = None, limit: int = 50) -> list[Job]:
    query = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if kernel:
        query = query.where(Job.kernel == kernel)
    return list(session.scalars(query))


def job_for_run(session: Session, run: str) -> Job | None:
    """The newest job started under a trigger's run id (``kl_jobs.trigger_id``), if any."""
    return session.scalars(select(Job).where(Job.trigger_id == run).order_by(Job.created_at.desc())).first()


def job_for_executor_ref(session: Session, ref: str) -> Job | None:
    """The job a Ray task or job (``kl_jobs.executor_ref``) opened, if it got that far."""
    return session.scalars(select(Job).where(Job.executor_ref == ref).order_by(Job.created_at.desc())).first()


def owner_alive(owner: str | None) -> bool:
    """Whether the ``host:pid`` owner still runs; another host's owner is presumed alive."""
    if not owner or ":" not in owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's job: not ours to judge
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


ORPHANED = "the process running it stopped (crash or kill)"


def fail_orphaned_jobs(session: Session, *, reason: str = ORPHANED) -> list[Job]:
    """Mark unfinished jobs whose owning process on this host is gone as failed."""
    failed = []
    for job in session.scalars(select(Job).where(Job.state.in_(UNFINISHED))):
        if job.owner == process_owner() or owner_alive(job.owner):
            continue
        transition(session, job=job, to_state="failed", message=f"{reason} (owner {job.owner})")
        failed.append(job)
    return failed


# ---- audit ------------------------------------------------------------------------------------

# The principal the lifecycle service verified for the request being handled (team mode); every
# audit row written meanwhile carries it. None in embedded mode: the actor there is only typed.
_PRINCIPAL: ContextVar[str | None] = ContextVar("kl_principal", default=None)


@contextmanager
def acting_as(principal: str) -> Iterator[str]:
    """Within this block, audit rows record ``principal`` as the authenticated identity."""
    token = _PRINCIPAL.set(principal)
    try:
        yield principal
    finally:
        _PRINCIPAL.reset(token)


def current_principal() -> str | None:
    return _PRINCIPAL.get()



def record_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    kernel: str,
    version: str | None = None,
    alias: str | None = None,
    from_version: str | None = None,
    to_version: str | None = None,
    reason: str | None = None,
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        actor=actor,
        principal=_PRINCIPAL.get(),
        action=action,
        kernel=kernel,
        version=version,
        alias=alias,
        from_version=from_version,
        to_version=to_version,
        reason=reason,
        outcome=outcome,
        details=details or {},
    )
    session.add(event)
    session.flush()
    return event


def list_audit(
    session: Session, *, kernel: str | None = None, limit: int = 100, actions: tuple[str, ...] | None = None
) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if kernel:
        query = query.where(AuditEvent.kernel == kernel)
    if actions:
        query = query.where(AuditEvent.action.in_(actions))
    return list(session.scalars(query))


def submitter_of(session: Session, *, kernel: str, version: str) -> str | None:
    """Who submitted the job that made ``kernel@version``: the actor of the audit row that first
    pointed ``candidate`` at it (a job's last step); None for a version no job made."""
    return session.scalars(
        select(AuditEvent.actor)
        .where(
            AuditEvent.kernel == kernel, AuditEvent.alias == "candidate", AuditEvent.to_version == version,
            AuditEvent.outcome == "ok",
        )
        .order_by(AuditEvent.id)
    ).first()


# ---- aliases ----------------------------------------------------------------------------------


def get_alias(session: Session, *, kernel: str, alias: str) -> str | None:
    row = session.get(AliasState, (kernel, alias))
    return row.version if row else None


def lock_alias(session: Session, *, kernel: str, alias: str) -> None:
    """Hold ``kernel``/``alias`` against every other writer until this transaction ends.

    Promotions and the guard both take it, so the guard never sees a promotion half done (the DB
    row written, MLflow moved, the commit not yet made) and reverts it. PostgreSQL: a
    transaction-scoped advisory lock (it also covers an alias that has no row yet). SQLite: any
    write statement takes the database's write lock until commit.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"kl_aliases/{kernel}/{alias}"})
        return
    session.execute(
        update(AliasState)
        .where(AliasState.kernel == kernel, AliasState.alias == alias)
        .values(revision=AliasState.revision)
        .execution_options(synchronize_session=False)
    )


def compare_and_set_alias(
    session: Session, *, kernel: str, alias: str, expected: str | None, new: str
) -> bool:
    """Move ``alias`` to ``new`` only if it still points at ``expected`` (None: unset).

    Takes :func:`lock_alias` first; on PostgreSQL the UPDATE also takes the row lock, so of
    concurrent callers expecting the same version exactly one sees rowcount 1.
    """
    lock_alias(session, kernel=kernel, alias=alias)
    if expected is None:
        if session.get(AliasState, (kernel, alias)) is not None:
            return False
        try:
            with session.begin_nested():  # a savepoint: losing the insert race keeps the caller's work
                session.add(AliasState(kernel=kernel, alias=alias, version=new, revision=1))
        except IntegrityError:
            return False
        return True
    result = session.execute(
        update(AliasState)
        .where(
            AliasState.kernel == kernel,
            AliasState.alias == alias,
            AliasState.version == expected,
        )
        .values(version=new, revision=AliasState.revision + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


# ---- policies, gates, approvals ---------------------------------------------------------------


def record_policy_snapshot(
    session: Session, *, kernel: str, path: str, content: str, sha256: str, applied_by: str
) -> PolicySnapshot:
    for old in session.scalars(
        select(PolicySnapshot).where(PolicySnapshot.kernel == kernel, PolicySnapshot.active)
    ):
        old.active = False
    snapshot = PolicySnapshot(
        kernel=kernel, path=path, content=content, sha256=sha256, applied_by=applied_by
    )
    session.add(snapshot)
    session.flush()
    return snapshot


def active_policy_snapshot(session: Session, *, kernel: str) -> PolicySnapshot | None:
    return session.scalars(
        select(PolicySnapshot)
        .where(PolicySnapshot.kernel == kernel, PolicySnapshot.active)
        .order_by(PolicySnapshot.id.desc())
    ).first()


def active_policy_snapshots(session: Session) -> list[PolicySnapshot]:
    return list(
        session.scalars(select(PolicySnapshot).where(PolicySnapshot.active).order_by(PolicySnapshot.kernel))
    )


def record_gate_decision(
    session: Session,
    *,
    kernel: str,
    version: str,
    champion_version: str | None,
    passed: bool,
    harness_hash: str,
    policy_sha256: str | None,
    decision: dict[str, Any],
) -> GateDecisionRow:
    row = GateDecisionRow(
        kernel=kernel,
        version=version,
        champion_version=champion_version,
        passed=passed,
        harness_hash=harness_hash,
        policy_sha256=policy_sha256,
        decision=decision,
    )
    session.add(row)
    session.flush()
    return row


def latest_gate_decision(session: Session, *, kernel: str, version: str) -> GateDecisionRow | None:
    return session.scalars(
        select(GateDecisionRow)
        .where(GateDecisionRow.kernel == kernel, GateDecisionRow.version == version)
        .order_by(GateDecisionRow.id.desc())
    ).first()


def add_approval(
    session: Session, *, kernel: str, version: str, approver: str, note: str | None = None
) -> Approval:
    existing = session.scalars(
        select(Approval).where(
            Approval.kernel == kernel, Approval.version == version, Approval.approver == approver
        )
    ).first()
    if existing:
        return existing
    approval = Approval(kernel=kernel, version=version, approver=approver, note=note)
    session.add(approval)
    session.flush()
    return approval


def approvals_for(session: Session, *, kernel: str, version: str) -> list[Approval]:
    return list(
        session.scalars(
            select(Approval).where(Approval.kernel == kernel, Approval.version == version)
        )
    )
