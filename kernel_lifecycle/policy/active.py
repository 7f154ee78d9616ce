"""The policy a kernel runs under now: the lifecycle DB's active snapshot, parsed.

Stored snapshots are parsed without date rules (``PolicyContext.stored()``): a sunset that has
passed since the policy was applied is a state to act on, not a reason the policy stops loading.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.errors import NotFoundError
from kernel_lifecycle.policy.loader import parse_policy
from kernel_lifecycle.policy.schema import Policy, PolicyContext


@dataclass(frozen=True)
class ActivePolicy:
    policy: Policy
    sha256: str


def active_policy(kernel: str) -> ActivePolicy:
    """The active policy of ``kernel``; refused with the command to run when none was applied."""
    with session_scope() as session:
        snapshot = repo.active_policy_snapshot(session, kernel=kernel)
        if snapshot is None:
            raise NotFoundError(
                f"no policy applied for kernel {kernel!r}; run `kernel-lifecycle policies apply FILE`"
            )
        content, path, sha = snapshot.content, snapshot.path, snapshot.sha256
    return ActivePolicy(policy=parse_policy(content, source=path, context=PolicyContext.stored()), sha256=sha)
