"""Job submission as a deciding action: the job runs as the caller, who must be an owner or an
approver of the kernel's active policy when the service verified them (a kernel with no policy yet,
adapt's or distill's first version, may be started by any authenticated user)."""

from __future__ import annotations

from typing import Any

from kernel_lifecycle.jobs.payloads import plan_resources, submit_job
from kernel_lifecycle.jobs.recipes import from_policy
from kernel_lifecycle.service.actions import BadRequest, Caller, policy_of, required_text, require_role


def job_submit(body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    kind, kernel = required_text(body, "kind"), required_text(body, "kernel")
    overrides = body.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise BadRequest("the request's 'overrides' must be an object")
    policy, sha = policy_of(kernel, required=kind not in ("adapt", "distill"))
    if caller.verified and policy is not None:
        require_role(policy, caller.actor, "owners", "approvers")
    config = from_policy(kind, policy, sha, kernel=kernel, **overrides)
    done = submit_job(config, actor=caller.actor, display=caller.display, resources=plan_resources(policy, kind),
                      detach=bool(body.get("detach")))
    if body.get("detach"):
        return {"executor": done.executor, "executor_ref": done.ref, "detached": True}
    return done.as_dict()
