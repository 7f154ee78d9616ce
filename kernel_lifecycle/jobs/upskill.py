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
from kernel_lifecycle.training.loop import train
from kernel_lifecycle.training.losses import ce_loss


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
        ctx, model, tokenizer = job.ctx, job.model, job.tokenizer
        stream = replay_batches(
            common.encode_skills(new_skill, tokenizer), common.encode_skills(replay_skills, tokenizer),
            batch_size=spec.batch_size, replay_ratio=spec.replay_ratio, seed=spec.seed, pad_id=pad_id_of(tokenizer),
        )
        curves = common.Curves(
            ctx.run_id, tokenizer, all_skills, roles={spec.skill: "learn"}, max_problems=spec.eval_problems,
            max_new_tokens=spec.harness.max_new_tokens, split=spec.harness.selection_split, seed=spec.seed,
        )
        curves(0, model)
        with ctx.step_metric("train.loss") as on_step:
            result = train(
                model, stream, loss_fn=ce_loss, steps=spec.steps, lr=spec.lr, seed=spec.seed,
                checkpoint_every=spec.eval_every, on_checkpoint=curves, on_step=on_step, progress=job.bar,
            )
        ctx.log_metric("train.tokens_per_second", result.tokens_per_second)
        curves.plot(ctx, retired=[], retained=list(all_skills), thresholds=spec.thresholds, chosen_step=spec.steps,
                    title=f"upskill of {spec.skill}: the new skill rises, replayed skills hold")

        ctx.state("evaluating", f"{spec.steps} steps done")
        model.eval()
        report = common.final_report(model, tokenizer, spec, skills=all_skills, trained_on=all_skills, progress=job.bar)
        return job.register(
            report, skill=spec.skill,
            retained=sorted({*job.parent.retained_skills, spec.skill}),
            retired=list(job.parent.retired_skills),
            policy_sha256=spec.policy_sha256,
            description=f"upskill of {spec.skill} from v{job.parent_kv.version} with replay of {', '.join(spec.replay) or 'nothing'}",
        )
