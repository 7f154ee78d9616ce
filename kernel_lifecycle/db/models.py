"""Typed SQLAlchemy 2.0 models of the lifecycle DB.

Tables are prefixed ``kl_`` so the database can be shared with MLflow's tables and
APScheduler's ``apscheduler_jobs`` without our migrations ever touching them.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Job(Base):
    """One distill/upskill/downskill/evaluate/promote execution. ``state`` follows JOB_TRANSITIONS."""

    __tablename__ = "kl_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    kernel: Mapped[str] = mapped_column(String(200), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    registered_version: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    # who runs it: host:pid, so a restarted process can tell a crashed job from a live one
    owner: Mapped[str | None] = mapped_column(String(200))
    trigger_id: Mapped[str | None] = mapped_column(String(200))
    # where it runs: "local" (the process that asked) or "ray", with the Ray task or job id
    executor: Mapped[str | None] = mapped_column(String(16))
    executor_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    events: Mapped[list[JobEvent]] = relationship(
        back_populates="job", order_by="JobEvent.id", cascade="all, delete-orphan"
    )


class JobEvent(Base):
    """A state change of a job, kept forever."""

    __tablename__ = "kl_job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("kl_jobs.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    job: Mapped[Job] = relationship(back_populates="events")


class AuditEvent(Base):
    """Who did what to which kernel version, when and why; refused attempts included.

    Append-only: the database refuses UPDATE and DELETE (migration 0003). ``principal`` is the
    identity the lifecycle service verified (team mode); NULL where the actor was only typed or
    defaulted (embedded mode, where a local store trusts its one user).
    """

    __tablename__ = "kl_audit_events"
    __table_args__ = (Index("ix_kl_audit_events_kernel_at", "kernel", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    principal: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))  # alias_set, rollback, promote, approve, ...
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # ok | refused
    kernel: Mapped[str] = mapped_column(String(200))
    version: Mapped[str | None] = mapped_column(String(32))
    alias: Mapped[str | None] = mapped_column(String(64))
    from_version: Mapped[str | None] = mapped_column(String(32))
    to_version: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AliasState(Base):
    """The authoritative alias -> version map, mirrored to MLflow's aliases.

    ``revision`` makes promotion a compare-and-set: an UPDATE that names the expected
    version only succeeds for one of several concurrent callers.
    """

    __tablename__ = "kl_aliases"

    kernel: Mapped[str] = mapped_column(String(200), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(32))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PolicySnapshot(Base):
    """An applied policy: its exact content and sha256, so any decision can cite it."""

    __tablename__ = "kl_policy_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kernel: Mapped[str] = mapped_column(String(200), index=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content: Mapped[str] = mapped_column(Text)
    applied_by: Mapped[str] = mapped_column(String(200))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class GateDecisionRow(Base):
    """A gate's verdict on a candidate against a specific champion (or none)."""

    __tablename__ = "kl_gate_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kernel: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(32))
    champion_version: Mapped[str | None] = mapped_column(String(32))
    passed: Mapped[bool] = mapped_column(Boolean)
    harness_hash: Mapped[str] = mapped_column(String(64))
    policy_sha256: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Approval(Base):
    """One approver's approval of one version; append-only like the audit (migration 0003)."""

    __tablename__ = "kl_approvals"
    __table_args__ = (UniqueConstraint("kernel", "version", "approver"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kernel: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(32))
    approver: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SchedulerLease(Base):
    """One row per (trigger, fire time): whoever inserts it runs that fire, exactly once."""

    __tablename__ = "kl_scheduler_leases"

    trigger_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    fire_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # running, done, failed, missed
    job_id: Mapped[str | None] = mapped_column(String(32))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message: Mapped[str | None] = mapped_column(Text)
