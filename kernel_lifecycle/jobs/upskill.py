"""upskill: teach a kernel a new technology with a new LoRA adapter, replaying retained skills.

Top to bottom: refuse bad input; open the job (``context.open_job``: the kernel, base +
adapters merged, with a fresh LoRA adapter attached); train with plain CE on batches that mix
the new skill's examples with a fixed share of retained-skill examples (replay keeps them from
being overwritten); every ``eval_every`` steps log the new skill's curve and the retained
skills' curves; measure the final model with the full harness; close the job: parent's adapters
+ this one registered as the candidate.
"""

from __future__ import annotations

from typing import Any

from kernel_lifecycle.display import SILENT, Display
from kernel_lifecycle.errors import JobError
from kernel_lifecycle.jobs import common
from kernel_lifecycle.jobs.config import UpskillConfig, plan_hyperparameters
from kernel_lifecycle.jobs.context import open_job
from kernel_lifecycle.policy.schema import Policy
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.training.data import pad_id_of, replay_batches


def policy_fields(policy: Policy) -> dict[str, Any]:
    """What an upskill reads of a policy: its upskill plan (the new skill, the replayed ones)."""
    plan = policy.plans.upskill
    if plan is None:
        raise JobError(f"the policy of {policy.kernel} has no upskill plan")
    return {**plan_hyperparameters(plan), "skill": plan.data_skill, "replay": list(plan.replay.skills), "replay_ratio": plan.replay.ratio}


def run(spec: UpskillConfig, *, actor: str, trigger_id: str | None = None, display: Display = SILENT) -> registry.KernelVersion:
    all_skills = common.skills_named([spec.skill, *spec.replay])
    common.require_train_data(all_skills[spec.skill])
    new_skill = {spec.skill: all_skills[spec.skill]}
    replay_skills = {name: all_skills[name] for name in spec.replay}

    with open_job(spec, all_skills, actor=actor, trigger_id=trigger_id, display=display) as job:
        tokenizer = job.tokenizer
        stream = replay_batches(
            common.encode_skills(new_skill, tokenizer), common.encode_skills(replay_skills, tokenizer),
            batch_size=spec.batch_size, replay_ratio=spec.replay_ratio, seed=spec.seed, pad_id=pad_id_of(tokenizer),
        )
        report = job.teach(spec, stream, all_skills, roles={spec.skill: "learn"},
                           title=f"upskill of {spec.skill}: the new skill rises, replayed skills hold")
        return job.register(
            report, skill=spec.skill,
            retained=sorted({*job.parent.retained_skills, spec.skill}),
            retired=list(job.parent.retired_skills),
            policy_sha256=spec.policy_sha256,
            description=f"upskill of {spec.skill} from v{job.parent_kv.version} with replay of {', '.join(spec.replay) or 'nothing'}",
        )
