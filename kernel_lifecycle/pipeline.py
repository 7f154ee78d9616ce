"""What a fired trigger (or the quickstart) runs: a job, its gate, and promotion when allowed.

``run_plan`` is the scheduler's single entry: downskill or upskill -> boundary evaluation (inside
the job) -> gate against the champion -> promote if the policy allows automatic promotion,
otherwise leave the gated candidate waiting for approval. ``evaluate`` re-measures the champion
(a periodic regression check) and registers nothing.
"""

from __future__ import annotations

from typing import Any

from kernel_lifecycle import executor
from kernel_lifecycle.boundary.inventory import evaluate_version
from kernel_lifecycle.display import SILENT, Display
from kernel_lifecycle.errors import JobError, RefusedError
from kernel_lifecycle.jobs.config import harness_of
from kernel_lifecycle.jobs.payloads import plan_resources, submit_job
from kernel_lifecycle.jobs.recipes import from_policy
from kernel_lifecycle.jobs.runner import job_run
from kernel_lifecycle.policy.active import ActivePolicy, active_policy
from kernel_lifecycle.promotion import promote, run_gate
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.settings import get_settings

PLANS = ("downskill", "upskill", "evaluate")


def run_plan(
    kernel: str,
    plan: str,
    *,
    trigger_id: str | None = None,
    actor: str = "scheduler",
    display: Display = SILENT,
    **overrides: Any,
) -> dict:
    if plan not in PLANS:
        raise JobError(f"unknown plan {plan!r}; plans: {', '.join(PLANS)}")
    active = active_policy(kernel)
    if plan == "evaluate":
        if get_settings().executor == "local":
            return evaluate_champion(kernel, active, trigger_id=trigger_id, actor=actor)
        return executor.submit(EVALUATE, {"kernel": kernel}, actor=actor, trigger_id=trigger_id).result()
    config = from_policy(plan, active.policy, active.sha256, **overrides)
    kv = submit_job(config, actor=actor, trigger_id=trigger_id, display=display,
                    resources=plan_resources(active.policy, plan))  # KL_EXECUTOR: here or on Ray
    gate = run_gate(kernel, kv.version)
    result = {"kernel": kernel, "plan": plan, "version": kv.version, "gate": gate["status"], "promoted": False}
    if gate["status"] == "passed" and active.policy.approvals.auto_promote:
        try:
            promote(kernel, kv.version, actor=actor, reason=f"automatic after {plan} ({trigger_id or 'manual'})", automatic=True)
            result["promoted"] = True
        except RefusedError as exc:
            result["refused"] = str(exc)
    return result


EVALUATE = "kernel_lifecycle.pipeline:evaluate_payload"


def evaluate_payload(payload: dict, *, actor: str, trigger_id: str | None = None) -> dict:
    """On an executor's worker: the periodic evaluation of ``payload["kernel"]``'s champion."""
    return evaluate_champion(payload["kernel"], active_policy(payload["kernel"]), trigger_id=trigger_id, actor=actor)


def evaluate_champion(kernel: str, active: ActivePolicy, *, trigger_id: str | None, actor: str) -> dict:
    """Re-measure the champion under the policy's harness; logs a report, registers nothing."""
    champion = registry.resolve(f"{kernel}@champion")
    with job_run("evaluate", kernel, {"version": champion.version}, actor=actor, trigger_id=trigger_id) as ctx:
        ctx.state("evaluating", f"champion v{champion.version}")
        report = evaluate_version(champion, harness_of(active.policy))
        ctx.log_report(report)
        ctx.state("succeeded", "report logged")
    return {"kernel": kernel, "plan": "evaluate", "version": champion.version, "job_id": ctx.job_id}
