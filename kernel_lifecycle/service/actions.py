"""The deciding actions, one code path for both modes.

Embedded mode: the CLI calls :func:`perform` in its own process with the typed or default actor
(a local store trusts its one user). Team mode: the lifecycle service calls it with the principal
MLflow's user store proved (``verified=True``), inside ``repo.acting_as`` so every audit row it
writes carries that principal; the policy's roles then apply to every action, not only to
approve and promote: policy apply needs an owner, rollback an approver, a job an owner or approver.
Job submission lives in ``service.jobs`` (it loads torch; deciding an approval should not).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel_lifecycle import aliases, promotion
from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.display import SILENT, Display
from kernel_lifecycle.errors import KernelLifecycleError, NotFoundError, RefusedError
from kernel_lifecycle.guard.aliases import REVERTED
from kernel_lifecycle.guard.aliases import check as guard_check
from kernel_lifecycle.guard.tags import TAG_REVERTED
from kernel_lifecycle.policy.active import active_policy
from kernel_lifecycle.policy.loader import LoadedPolicy, parse_policy
from kernel_lifecycle.policy.schema import Policy
from kernel_lifecycle.policy_apply import apply_policy


class BadRequest(KernelLifecycleError):
    """A request to the lifecycle service lacks a field or names no action."""


@dataclass(frozen=True)
class Caller:
    actor: str
    verified: bool  # True: a principal the service authenticated; False: a typed or default name
    display: Display = SILENT


def required_text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"the request needs {name!r} (a non-empty string)")
    return value


def policy_of(kernel: str, *, required: bool) -> tuple[Policy | None, str | None]:
    """The kernel's active policy and its sha256; (None, None) when it has none and none is required."""
    try:
        active = active_policy(kernel)
    except NotFoundError:
        if required:
            raise
        return None, None  # a kernel may be distilled before its policy is applied
    return active.policy, active.sha256


def require_role(policy: Policy, principal: str, *roles: str) -> None:
    """Refuse unless ``principal`` is listed in one of the policy's ``roles`` (owners, approvers)."""
    allowed = {name for role in roles for name in (policy.owners if role == "owners" else policy.approvals.approvers)}
    if principal not in allowed:
        raise RefusedError(
            f"{principal!r} is not among the {' or '.join(roles)} of {policy.kernel} "
            f"(the policy lists: {', '.join(sorted(allowed)) or 'nobody'})"
        )


def _approve(body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    kernel, version = required_text(body, "kernel"), required_text(body, "version")
    count = promotion.approve(kernel, version, approver=caller.actor, note=body.get("note"))
    return {"kernel": kernel, "version": version, "approver": caller.actor, "approvals": count}


def _promote(body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    return promotion.promote(required_text(body, "kernel"), required_text(body, "version"), actor=caller.actor, reason=body.get("reason"))


def _rollback(body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    kernel, to_version, reason = required_text(body, "kernel"), required_text(body, "to_version"), required_text(body, "reason")
    if caller.verified:
        require_role(active_policy(kernel).policy, caller.actor, "approvers")
    with session_scope() as session:
        previous = aliases.rollback(session, name=kernel, to_version=to_version, actor=caller.actor, reason=reason)
    return {"kernel": kernel, "alias": "champion", "from": previous, "to": to_version, "actor": caller.actor}


def _policy_apply(body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    path, content = required_text(body, "path"), required_text(body, "content").encode("utf-8")
    loaded = LoadedPolicy(
        policy=parse_policy(content, source=path), path=Path(path), content=content,
        sha256=hashlib.sha256(content).hexdigest(),
    )
    if caller.verified:  # the active policy's owners decide its successor; a new kernel's own owners its first
        current, _ = policy_of(loaded.policy.kernel, required=False)
        require_role(current or loaded.policy, caller.actor, "owners")
    return apply_policy(loaded, actor=caller.actor)


def _guard_check(body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    repair = bool(body.get("repair"))
    kernels = body.get("kernels") or None
    details = {"requested_by": caller.actor} if repair else None
    return guard_check(do_repair=repair, kernels=kernels, details=details).as_dict()


def _audit(body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    with session_scope() as session:
        events = repo.list_audit(
            session, kernel=body.get("kernel") or None, limit=int(body.get("limit") or 50),
            actions=(REVERTED, TAG_REVERTED) if body.get("reverted") else None,
        )
        rows = [
            {
                "id": e.id, "at": e.at, "actor": e.actor, "principal": e.principal, "action": e.action,
                "outcome": e.outcome, "kernel": e.kernel, "version": e.version, "alias": e.alias,
                "from": e.from_version, "to": e.to_version, "reason": e.reason, "details": e.details,
            }
            for e in events
        ]
    return {"rows": rows}


ACTIONS: dict[str, Callable[[dict[str, Any], Caller], dict[str, Any]]] = {
    "approve": _approve,
    "promote": _promote,
    "rollback": _rollback,
    "policy_apply": _policy_apply,
    "guard_check": _guard_check,
    "audit": _audit,
}


Handler = Callable[[dict[str, Any], Caller], dict[str, Any]]


def perform(
    action: str, body: dict[str, Any], *, actor: str, verified: bool = False, display: Display = SILENT,
    actions: dict[str, Handler] = ACTIONS,
) -> dict[str, Any]:
    """Run ``action`` with ``body`` as ``actor``; ``verified`` when the service authenticated it."""
    handler = actions.get(action)
    if handler is None:
        raise BadRequest(f"no action {action!r}; the service knows: {', '.join(actions)}")
    if verified:
        with repo.acting_as(actor):
            return handler(body, Caller(actor, True, display))
    return handler(body, Caller(actor, False, display))
