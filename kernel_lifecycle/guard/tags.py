"""Lineage and gate tags changed outside the lifecycle: restored from what they are derived from.

A version's lineage tags (``kernel.parent_version``, ``kernel.adapters``, ...) come from its
verified bundle manifest (``registry.client.lineage_tags``); its gate tags (``gate.status``,
``gate.champion``, ``gate.report``) from the latest gate decision in the lifecycle DB
(``gates.gate_tags``). Tags with no such source (``kernel.job_kind``, a person's own tags)
are left alone. A tag that the source says must not exist is deleted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.gates import GateDecision, gate_tags
from kernel_lifecycle.guard.aliases import GUARD_ACTOR, UNKNOWN_MOVER, GuardResult, managed_kernels
from kernel_lifecycle.registry.bundle import read_manifest
from kernel_lifecycle.registry.client import fetch_bundle, get_version, lineage_tags
from kernel_lifecycle.registry.tracking import client

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

TAG_REVERTED = "tag_reverted"
GATE_KEYS = ("gate.status", "gate.champion", "gate.report")
LINEAGE_KEYS = (
    "kernel.parent_version",
    "kernel.job_id",
    "kernel.policy_sha256",
    "kernel.skills.retained",
    "kernel.skills.retired",
    "kernel.adapters",
    "kernel.base_uri",
    "kernel.base_sha256",
    "kernel.data",
)


@dataclass(frozen=True)
class TagDrift:
    kernel: str
    version: str
    tag: str
    mlflow_value: str | None
    expected_value: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_tags(session: Session, kernel: str, version: str) -> dict[str, str | None]:
    """What each guarded tag of a version must be (None: absent)."""
    lineage = lineage_tags(read_manifest(fetch_bundle(get_version(kernel, version))))
    row = repo.latest_gate_decision(session, kernel=kernel, version=version)
    gate = (
        gate_tags(passed=row.passed, champion_version=row.champion_version, summary=GateDecision.model_validate(row.decision).summary())
        if row
        else {}
    )
    return {key: lineage.get(key) for key in LINEAGE_KEYS} | {key: gate.get(key) for key in GATE_KEYS}


def check_tags(kernel: str, version: str, *, source: str, details: dict[str, Any] | None = None) -> GuardResult[TagDrift]:
    """Restore the guarded tags of one version of a managed kernel; each restore is audited."""
    result: GuardResult[TagDrift] = GuardResult()
    with session_scope() as session:
        if kernel not in managed_kernels(session):
            return result
        want = expected_tags(session, kernel, version)
        have = get_version(kernel, version).tags
        mlflow_client = client()
        for key, value in want.items():
            if have.get(key) == value:
                continue
            drift = TagDrift(kernel, version, key, have.get(key), value)
            result.drift.append(drift)
            result.repaired.append(drift)
            repo.record_audit(
                session,
                actor=GUARD_ACTOR,
                action=TAG_REVERTED,
                kernel=kernel,
                version=version,
                reason=f"tag {key} of v{version} was changed outside the lifecycle; restored from "
                + ("the gate decision" if key in GATE_KEYS else "the bundle manifest"),
                details={"drift": drift.as_dict(), "source": source, "moved_by": UNKNOWN_MOVER, **(details or {})},
            )
            if value is None:
                mlflow_client.delete_model_version_tag(kernel, version, key)
            else:
                mlflow_client.set_model_version_tag(kernel, version, key, value)
    return result
