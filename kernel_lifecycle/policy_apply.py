"""Applying a policy: record its exact content and sha256 as the kernel's active snapshot.

Validation happens first (``load_policy`` raises with every located problem), so an invalid
file is never applied and the previous snapshot stays active.
"""

from __future__ import annotations

from typing import Any

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.policy.loader import LoadedPolicy, policy_snapshot


def apply_policy(loaded: LoadedPolicy, *, actor: str) -> dict[str, Any]:
    with session_scope() as session:
        current = repo.active_policy_snapshot(session, kernel=loaded.policy.kernel)
        if current is not None and current.sha256 == loaded.sha256:
            return {"kernel": loaded.policy.kernel, "sha256": loaded.sha256, "changed": False, "snapshot": current.id}
        snapshot = repo.record_policy_snapshot(session, **policy_snapshot(loaded), applied_by=actor)
        repo.record_audit(
            session,
            actor=actor,
            action="policy_apply",
            kernel=loaded.policy.kernel,
            reason=f"{loaded.path} sha256 {loaded.sha256[:12]}",
            details={"previous_sha256": current.sha256 if current else None},
        )
        return {"kernel": loaded.policy.kernel, "sha256": loaded.sha256, "changed": True, "snapshot": snapshot.id}
