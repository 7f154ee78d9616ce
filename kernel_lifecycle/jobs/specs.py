"""From a policy to job specs: one place that reads plans, thresholds and the gate's harness."""

from __future__ import annotations

from typing import Any

from kernel_lifecycle.boundary.report import HarnessConfig
from kernel_lifecycle.errors import PolicyError
from kernel_lifecycle.jobs.common import Thresholds
from kernel_lifecycle.jobs.downskill import DownskillSpec
from kernel_lifecycle.jobs.upskill import UpskillSpec


def harness_of(policy) -> HarnessConfig:  # noqa: ANN001
    h = policy.gate.harness
    return HarnessConfig(
        max_new_tokens=h.max_new_tokens,
        n_samples=h.n_samples,
        k=h.k,
        split=h.split,
        max_problems=h.max_problems,
        temperature=0.0 if h.n_samples == 1 else 0.8,
    )


def thresholds_of(policy) -> Thresholds:  # noqa: ANN001
    return Thresholds(
        floors={s.name: s.floor for s in policy.skills.retained},
        ceilings={s.name: s.ceiling for s in policy.skills.retired},
        tolerance={s.name: policy.tolerance_for(s) for s in policy.skills.retained},
    )


def policy_skills(policy) -> list[str]:  # noqa: ANN001
    return sorted({s.name for s in policy.skills.retained} | {s.name for s in policy.skills.retired})


def _overrides(spec, overrides: dict[str, Any]):  # noqa: ANN001, ANN202
    for key, value in overrides.items():
        if value is not None:
            setattr(spec, key, value)
    return spec


def _plan_fields(policy, plan, policy_sha256: str) -> dict[str, Any]:  # noqa: ANN001
    """What every plan's spec takes alike: the kernel, the step loop's hyperparameters, and
    the policy's thresholds, harness, skills and hash."""
    hp = plan.hyperparameters
    return {
        "kernel": policy.kernel,
        "steps": hp.steps,
        "lr": hp.lr,
        "rank": hp.rank,
        "batch_size": hp.batch_size,
        "eval_every": hp.eval_every,
        "thresholds": thresholds_of(policy),
        "harness": harness_of(policy),
        "policy_sha256": policy_sha256,
        "report_skills": policy_skills(policy),
    }


def _plan(policy, kind: str):  # noqa: ANN001, ANN202
    plan = getattr(policy.plans, kind)
    if plan is None:
        raise PolicyError(f"the policy of {policy.kernel} has no {kind} plan")
    return plan


def downskill_spec(policy, policy_sha256: str, **overrides: Any) -> DownskillSpec:  # noqa: ANN001
    plan = _plan(policy, "downskill")
    spec = DownskillSpec(
        skill=plan.skill,
        retain=list(plan.retain) or [s.name for s in policy.skills.retained],
        method=plan.method,
        method_options=plan.method_options(),
        **_plan_fields(policy, plan, policy_sha256),
    )
    return _overrides(spec, overrides)


def upskill_spec(policy, policy_sha256: str, **overrides: Any) -> UpskillSpec:  # noqa: ANN001
    plan = _plan(policy, "upskill")
    spec = UpskillSpec(
        skill=plan.data_skill,
        replay=list(plan.replay.skills),
        replay_ratio=plan.replay.ratio,
        **_plan_fields(policy, plan, policy_sha256),
    )
    return _overrides(spec, overrides)
