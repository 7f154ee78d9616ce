"""downskill: retire a deprecated skill with a forget loss + a retain loss on a new LoRA adapter.

Top to bottom:
1. check everything that can be refused (method name, skills, data) before loading a model;
2. load the kernel (base + its adapters merged) and attach a fresh LoRA adapter;
3. train with the method's loss; every ``eval_every`` steps measure the retired skill and the
   retained ones on a fixed dev subset, log both curves as MLflow step metrics, keep the adapter;
4. choose the *boundary* checkpoint: the first where the retired skill's upper bound is at or
   under its ceiling and every retained skill is within tolerance of where it started;
5. re-measure that checkpoint with the full harness (all checks), then a relearning probe: a
   short fine-tune on nearby data shows how quickly the skill comes back;
6. write the bundle (parent's adapters + this one) and register it as the candidate.
"""

from __future__ import annotations

import copy

from kernel_lifecycle.boundary.report import CheckResult
from kernel_lifecycle.errors import JobError
from kernel_lifecycle.jobs import common
from kernel_lifecycle.jobs.config import DownskillConfig
from kernel_lifecycle.registry import client as registry


def check_data(config: DownskillConfig) -> dict:
    """What the config cannot check alone: the skills exist and have data to train on."""
    skills = common.skills_named([config.skill, *config.retain])
    for skill in skills.values():
        common.require_train_data(skill)
    return skills


def choose_boundary(curves: common.Curves, spec: DownskillConfig) -> int | None:
    """The first checkpoint with the retired skill at its ceiling and retained ones in tolerance."""
    start = curves.history[0][1]
    for step, metrics in curves.history[1:]:
        forgotten = metrics[spec.skill].ci_high <= spec.thresholds.ceiling(spec.skill)
        kept = all(metrics[name].value >= start[name].value - spec.thresholds.allowed_drop(name) for name in spec.retain)
        if forgotten and kept:
            return step
    return None


def run(spec: DownskillConfig, *, actor: str, trigger_id: str | None = None, progress: bool = True) -> registry.KernelVersion:
    from peft import set_peft_model_state_dict

    from kernel_lifecycle.training.data import batches, paired_batches, pad_id_of
    from kernel_lifecycle.training.lora import active_adapter
    from kernel_lifecycle.training.loop import train
    from kernel_lifecycle.training.losses import ce_loss
    from kernel_lifecycle.unlearning import get_method

    all_skills = check_data(spec)
    forget_skill = {spec.skill: all_skills[spec.skill]}
    retain_skills = {name: all_skills[name] for name in spec.retain}
    method = get_method(spec.method, **spec.method_options)

    with common.child_job(spec, all_skills, actor=actor, trigger_id=trigger_id, progress=progress) as job:
        ctx, model, tokenizer, bar = job.ctx, job.model, job.tokenizer, job.bar
        pad = pad_id_of(tokenizer)
        forget_batches = batches(common.encode_skills(forget_skill, tokenizer), batch_size=spec.batch_size, seed=spec.seed, pad_id=pad)
        retain_batches = batches(common.encode_skills(retain_skills, tokenizer), batch_size=spec.batch_size, seed=spec.seed + 7, pad_id=pad)

        curves = common.Curves(
            ctx.run_id, tokenizer, all_skills, roles={spec.skill: "forget"}, max_problems=spec.eval_problems,
            max_new_tokens=spec.harness.max_new_tokens, seed=spec.seed, keep_adapter=True,
        )
        curves(0, model)  # step 0: where the kernel starts (a fresh LoRA adapter is a no-op, B = 0)
        result = method.run(
            model,
            paired_batches(forget_batches, retain_batches if method.needs_retain else None),
            steps=spec.steps,
            lr=spec.lr,
            seed=spec.seed,
            checkpoint_every=spec.eval_every,
            on_checkpoint=curves,
            on_step=lambda step, loss, stats: ctx.log_metric("train.loss", loss, step=step),
            progress=bar,
        )
        ctx.log_metric("train.tokens_per_second", result.tokens_per_second)

        chosen = choose_boundary(curves, spec)
        curves.plot(ctx, retired=[spec.skill], retained=list(spec.retain), thresholds=spec.thresholds, chosen_step=chosen)
        if chosen is None:
            last = curves.history[-1][1]
            raise JobError(
                f"no checkpoint reached the boundary in {spec.steps} steps: {spec.skill} upper bound "
                f"{last[spec.skill].ci_high:.3f} (ceiling {spec.thresholds.ceiling(spec.skill)}), "
                + ", ".join(f"{n} {last[n].value:.3f}" for n in spec.retain)
                + "; raise steps or lr, or change the method"
            )
        ctx.log_metric("boundary.step", chosen)
        set_peft_model_state_dict(model, curves.adapters[chosen], adapter_name=active_adapter(model))

        ctx.state("evaluating", f"boundary at step {chosen}")
        model.eval()
        report = common.final_report(
            model, tokenizer, kernel=spec.kernel, skills=common.report_skills(spec.report_skills, all_skills), harness=spec.harness,
            thresholds=spec.thresholds, trained_on=all_skills, progress=bar,
        )
        report.checks.append(relearning_probe(model, tokenizer, spec, forget_skill[spec.skill], curves.history[0][1], train, ce_loss))
        return job.register(
            report, skill=spec.skill,
            retained=[s for s in job.parent.retained_skills if s != spec.skill] or list(spec.retain),
            retired=sorted({*job.parent.retired_skills, spec.skill}),
            policy_sha256=spec.policy_sha256,
            description=f"downskill of {spec.skill} ({spec.method}) from v{job.parent_kv.version}; boundary at step {chosen}",
        )


def relearning_probe(model, tokenizer, spec, skill, start, train, ce_loss) -> CheckResult:  # noqa: ANN001
    """Fine-tune a copy briefly on nearby data (the skill's train split) and re-measure it.

    Unlearning that only hides a skill comes back within a few steps; the number is reported
    beside the start and the boundary values. It passes when the skill stays under half of
    where it started.
    """
    import torch

    from kernel_lifecycle.boundary.evaluate import measure_skills
    from kernel_lifecycle.training.data import batches, encode_probes, pad_id_of
    from kernel_lifecycle.training.lora import attach_lora

    probe_model = copy.deepcopy(model).merge_and_unload()
    probe_model = attach_lora(probe_model, adapter_name="relearn", r=spec.rank, alpha=spec.lora_alpha, seed=spec.seed + 1)
    nearby = skill.probes("train")[:32]
    train(
        probe_model,
        batches(encode_probes(nearby, tokenizer), batch_size=spec.batch_size, seed=spec.seed + 2, pad_id=pad_id_of(tokenizer)),
        loss_fn=ce_loss,
        steps=spec.relearn_steps,
        lr=spec.lr,
        seed=spec.seed,
    )
    probe_model.eval()
    with torch.inference_mode():
        after = measure_skills(
            probe_model, tokenizer, {skill.name: skill}, split="dev", max_problems=spec.eval_problems,
            max_new_tokens=spec.harness.max_new_tokens, seed=spec.seed,
        )[skill.name]
    before = start[skill.name].value
    passed = after.value <= 0.5 * before
    return CheckResult(
        name="relearning",
        passed=passed,
        detail=(
            f"{skill.name} after {spec.relearn_steps} relearning steps on {len(nearby)} nearby examples: "
            f"{after.value:.3f} (started at {before:.3f}); "
            + ("stays under half its start" if passed else "came back: the skill was hidden, not removed")
        ),
        numbers={"start": before, "after_relearning": after.value, "steps": float(spec.relearn_steps)},
    )
