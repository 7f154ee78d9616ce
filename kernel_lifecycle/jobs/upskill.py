"""upskill: teach a kernel a new technology with a new LoRA adapter, replaying retained skills.

Top to bottom: refuse bad input; load the kernel (base + adapters merged); attach a LoRA
adapter; train with plain CE on batches that mix the new skill's examples with a fixed share of
retained-skill examples (replay keeps them from being overwritten); every ``eval_every`` steps
log the new skill's curve and the retained skills' curves; measure the final model with the full
harness; register parent's adapters + this one as the candidate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kernel_lifecycle.boundary.report import HarnessConfig
from kernel_lifecycle.errors import JobError
from kernel_lifecycle.jobs import common
from kernel_lifecycle.registry import client as registry


@dataclass
class UpskillSpec:
    kernel: str
    skill: str  # the new technology
    replay: list[str]  # retained skills replayed during training
    steps: int = 80
    lr: float = 3e-3
    rank: int = 8
    batch_size: int = 8
    replay_ratio: float = 0.25
    eval_every: int = 20
    eval_problems: int = 48
    seed: int = 0
    from_ref: str | None = None
    thresholds: common.Thresholds = field(default_factory=common.Thresholds)
    harness: HarnessConfig = field(default_factory=lambda: HarnessConfig(max_new_tokens=160))
    policy_sha256: str | None = None
    # skills the final report measures (default: the job's own); the policy's full list keeps
    # every version's harness hash comparable, so gates need not re-evaluate the champion
    report_skills: list[str] = field(default_factory=list)


def validate(spec: UpskillSpec) -> None:
    if spec.skill in spec.replay:
        raise JobError(f"skill {spec.skill!r} is the one being learned; do not list it as replay")
    skills = common.skills_named([spec.skill, *spec.replay])
    common.require_train_data(skills[spec.skill])
    if spec.steps < 1 or spec.eval_every < 1:
        raise JobError("steps and eval_every must be at least 1")
    if not 0.0 <= spec.replay_ratio < 1.0:
        raise JobError(f"replay ratio must be in [0, 1), got {spec.replay_ratio}")


def run(spec: UpskillSpec, *, actor: str, trigger_id: str | None = None, progress: bool = True) -> registry.KernelVersion:
    from kernel_lifecycle.training.data import pad_id_of, replay_batches
    from kernel_lifecycle.training.loop import train
    from kernel_lifecycle.training.losses import ce_loss

    validate(spec)
    new_skill = common.skills_named([spec.skill])
    replay_skills = common.skills_named(spec.replay)
    all_skills = {**replay_skills, **new_skill}

    with common.child_job("upskill", spec, all_skills, actor=actor, trigger_id=trigger_id, progress=progress) as job:
        ctx, model, tokenizer = job.ctx, job.model, job.tokenizer
        stream = replay_batches(
            common.encode_skills(new_skill, tokenizer), common.encode_skills(replay_skills, tokenizer),
            batch_size=spec.batch_size, replay_ratio=spec.replay_ratio, seed=spec.seed, pad_id=pad_id_of(tokenizer),
        )
        curves = common.Curves(
            ctx.run_id, tokenizer, all_skills, roles={spec.skill: "learn"}, max_problems=spec.eval_problems,
            max_new_tokens=spec.harness.max_new_tokens, seed=spec.seed,
        )
        curves(0, model)
        result = train(
            model, stream, loss_fn=ce_loss, steps=spec.steps, lr=spec.lr, seed=spec.seed,
            checkpoint_every=spec.eval_every, on_checkpoint=curves,
            on_step=lambda step, loss, stats: ctx.log_metric("train.loss", loss, step=step),
            progress=job.bar,
        )
        ctx.log_metric("train.tokens_per_second", result.tokens_per_second)
        curves.plot(ctx, retired=[], retained=list(all_skills), thresholds=spec.thresholds, chosen_step=spec.steps,
                    title=f"upskill of {spec.skill}: the new skill rises, replayed skills hold")

        ctx.state("evaluating", f"{spec.steps} steps done")
        model.eval()
        report = common.final_report(
            model, tokenizer, kernel=spec.kernel, skills=common.report_skills(spec.report_skills, all_skills), harness=spec.harness,
            thresholds=spec.thresholds, trained_on=all_skills, progress=job.bar,
        )
        return job.register(
            report, skill=spec.skill,
            retained=sorted({*job.parent.retained_skills, spec.skill}),
            retired=list(job.parent.retired_skills),
            policy_sha256=spec.policy_sha256,
            description=f"upskill of {spec.skill} from v{job.parent_kv.version} with replay of {', '.join(spec.replay) or 'nothing'}",
        )
