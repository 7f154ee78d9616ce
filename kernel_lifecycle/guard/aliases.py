"""Alias drift: where MLflow's ``champion``/``candidate`` differ from the lifecycle DB, and the repair.

The lifecycle DB is the truth: every alias move it makes is a compare-and-set on ``kl_aliases``
with its audit row in the same transaction (``kernel_lifecycle.aliases.move_alias``), so ``kl_aliases`` is
the audit trail's latest word on where each alias must point. A kernel is *managed* once the DB
holds an alias for it or an active policy names it; on a managed kernel, a guarded alias that
MLflow has and the DB has not is drift too (someone created it outside the lifecycle).

A repair takes the alias's lock (``repo.lock_alias``, the same one promotions take), reads both
sides again, and only then puts MLflow back and writes an ``alias_reverted`` audit row: a
promotion in flight is waited for, never reverted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sqlalchemy import select

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.db.models import AliasState, PolicySnapshot
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.registry.tracking import client

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

ALIASES = ("champion", "candidate")  # the aliases the lifecycle moves, and so the guard watches
GUARD_ACTOR = "kernel-lifecycle-guard"
REVERTED = "alias_reverted"
# MLflow records no user on an alias move (nor in its webhook payloads); the audit row says so
# rather than guessing.
UNKNOWN_MOVER = "not recorded by MLflow"


@dataclass(frozen=True)
class Drift:
    kernel: str
    alias: str
    mlflow_version: str | None
    audited_version: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Reportable(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


DriftT = TypeVar("DriftT", bound=Reportable)  # Drift (aliases) or tags.TagDrift


@dataclass
class GuardResult(Generic[DriftT]):
    drift: list[DriftT] = field(default_factory=list)
    repaired: list[DriftT] = field(default_factory=list)
    remaining: list[dict[str, Any]] = field(default_factory=list)  # drift + why it is not repaired

    @property
    def consistent(self) -> bool:
        return not self.remaining

    def as_dict(self) -> dict[str, Any]:
        return {
            "consistent": self.consistent,
            "drift": [d.as_dict() for d in self.drift],
            "repaired": [d.as_dict() for d in self.repaired],
            "remaining": self.remaining,
        }


def managed_kernels(session: Session) -> list[str]:
    with_aliases = session.scalars(select(AliasState.kernel).distinct())
    with_policy = session.scalars(select(PolicySnapshot.kernel).where(PolicySnapshot.active).distinct())
    return sorted(set(with_aliases) | set(with_policy))


def audited_targets(session: Session, kernel: str) -> dict[str, str | None]:
    return {alias: repo.get_alias(session, kernel=kernel, alias=alias) for alias in ALIASES}


def mlflow_targets(kernel: str) -> dict[str, str | None]:
    """MLflow's guarded aliases of a kernel; a kernel MLflow does not know has none."""
    from mlflow.exceptions import MlflowException

    try:
        aliases = registry.alias_targets(kernel)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        aliases = {}
    return {alias: aliases.get(alias) for alias in ALIASES}


def _drift_of(kernel: str, audited: dict[str, str | None], mlflow: dict[str, str | None]) -> list[Drift]:
    return [
        Drift(kernel, alias, mlflow[alias], audited[alias])
        for alias in ALIASES
        if mlflow[alias] != audited[alias]
    ]


def find_drift(kernels: list[str] | None = None) -> list[Drift]:
    """Every managed alias whose MLflow target differs from the audited one (no locks taken)."""
    with session_scope() as session:
        names = kernels if kernels is not None else managed_kernels(session)
        audited = {name: audited_targets(session, name) for name in names}
    return [d for name in names for d in _drift_of(name, audited[name], mlflow_targets(name))]


def repair(drift: Drift, *, source: str, details: dict[str, Any] | None = None) -> Drift | None:
    """Put one alias back where the audit says, under the alias lock; None if it healed meanwhile.

    Returns the drift as found under the lock (a promotion may have changed it since
    :func:`find_drift` looked)."""
    with session_scope() as session:
        repo.lock_alias(session, kernel=drift.kernel, alias=drift.alias)
        audited = repo.get_alias(session, kernel=drift.kernel, alias=drift.alias)
        if drift.kernel not in managed_kernels(session):
            return None
        found = mlflow_targets(drift.kernel)[drift.alias]
        if found == audited:
            return None
        now = Drift(drift.kernel, drift.alias, found, audited)
        repo.record_audit(
            session,
            actor=GUARD_ACTOR,
            action=REVERTED,
            kernel=drift.kernel,
            version=audited,
            alias=drift.alias,
            from_version=found,
            to_version=audited,
            reason=(
                f"{drift.alias} was moved outside the lifecycle to "
                f"{'v' + found if found else 'nothing'}; the audit says {'v' + audited if audited else 'nothing'}"
            ),
            details={"drift": now.as_dict(), "source": source, "moved_by": UNKNOWN_MOVER, **(details or {})},
        )
        if audited is None:
            client().delete_registered_model_alias(drift.kernel, drift.alias)
        else:
            registry.set_alias(drift.kernel, drift.alias, audited)
    return now


def check(*, do_repair: bool, kernels: list[str] | None = None, source: str = "check", details: dict[str, Any] | None = None) -> GuardResult[Drift]:
    """``guard check [--repair]``: the drift, and with ``do_repair`` each alias put back, audited."""
    from mlflow.exceptions import MlflowException

    result = GuardResult(drift=find_drift(kernels))
    for drift in result.drift:
        if not do_repair:
            result.remaining.append({**drift.as_dict(), "why": "not repaired (run with --repair)"})
            continue
        try:
            repaired = repair(drift, source=source, details=details)
        except MlflowException as exc:
            result.remaining.append({**drift.as_dict(), "why": f"MLflow refused the repair: {exc.message}"})
            continue
        if repaired is not None:
            result.repaired.append(repaired)
    return result
