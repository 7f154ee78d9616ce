"""downskill: retire a deprecated skill with a forget loss + a retain loss on a new LoRA adapter.

Top to bottom:
1. check everything that can be refused (method name, skills, data) before loading a model;
2. load the kernel (base + its adapters merged) and attach a fresh LoRA adapter;
3. train with the method's loss; every ``eval_every`` steps measure the retired skill and the
   retained ones on a fixed dev subset, log both curves as MLflow step metrics, keep the adapter;
4. choose the *boundary* checkpoint: the first where the retired skill's upper bound is at or
   under its ceiling and every retained skill is within tolerance of where it started;
5. re-measure that checkpoint with the full harness (gate split, fresh, all checks); say
   whether the fresh claim means anything (vacuous when the kernel was already under the
   ceiling on fresh before the downskill); then the relearning check: a short fine-tune on the
   skill's ``relearn`` split (disjoint from every measured split), measured on the gate split
   after each step, shows how quickly the skill comes back;
6. write the bundle (parent's adapters + this one) and register it as the candidate.
"""

from __future__ import annotations

import copy

from kernel_lifecycle.boundary.report import CheckResult, Forgetting, SkillMetrics
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
            max_new_tokens=spec.harness.max_new_tokens, split=spec.harness.selection_split, seed=spec.seed, keep_adapter=True,
        )
        curves(0, model)  # step 0: where the kernel starts (a fresh LoRA adapter is a no-op, B = 0)
        before = starting_point(model, tokenizer, spec, job.parent_kv, all_skills[spec.skill])
        with ctx.step_metric("train.loss") as on_step:
            result = method.run(
                model,
                paired_batches(forget_batches, retain_batches if method.needs_retain else None),
                steps=spec.steps,
                lr=spec.lr,
                seed=spec.seed,
                checkpoint_every=spec.eval_every,
                on_checkpoint=curves,
                on_step=on_step,
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
        report = common.final_report(model, tokenizer, spec, skills=all_skills, trained_on=all_skills, progress=bar)
        fresh_before = before["fresh"]
        report.forgetting[spec.skill] = Forgetting(
            fresh_before=fresh_before.value, fresh_before_ci_high=fresh_before.ci_high,
            vacuous=fresh_before.ci_high <= spec.thresholds.ceiling(spec.skill),
        )
        report.checks.append(relearning_check(model, tokenizer, spec, all_skills[spec.skill], before["gate"].value, ctx))
        return job.register(
            report, skill=spec.skill,
            retained=[s for s in job.parent.retained_skills if s != spec.skill] or list(spec.retain),
            retired=sorted({*job.parent.retired_skills, spec.skill}),
            policy_sha256=spec.policy_sha256,
            description=f"downskill of {spec.skill} ({spec.method}) from v{job.parent_kv.version}; boundary at step {chosen}",
        )


def starting_point(model, tokenizer, spec: DownskillConfig, parent_kv, skill) -> dict[str, SkillMetrics]:  # noqa: ANN001
    """The retired skill before the downskill, on the gate split and on fresh: from the parent
    version's registered report when it was measured under the same harness on the same probe
    files, else measured now on the unchanged model (its new adapter is still a no-op)."""
    import torch

    from kernel_lifecycle.boundary.evaluate import measure_skill
    from kernel_lifecycle.promotion import load_version_report

    split = spec.harness.split
    try:
        parent = load_version_report(parent_kv)
    except Exception:  # noqa: BLE001 - no report (registered by hand): measure instead
        parent = None
    same = (
        parent is not None
        and parent.harness.split == split
        and parent.harness.max_new_tokens == spec.harness.max_new_tokens
        and parent.harness.max_problems == spec.harness.max_problems
        and parent.harness.probe_digests.get(f"{skill.name}/{split}") == skill.digest(split)
        and parent.harness.probe_digests.get(f"{skill.name}/fresh") == skill.digest("fresh")
        and skill.name in parent.skills
        and skill.name in parent.fresh
    )
    if same:
        return {"gate": parent.skills[skill.name], "fresh": parent.fresh[skill.name]}
    model.eval()
    with torch.inference_mode():
        out = {
            role: measure_skill(
                model, tokenizer, skill=skill, split=which, max_problems=spec.harness.max_problems,
                max_new_tokens=spec.harness.max_new_tokens, seed=spec.seed,
            )
            for role, which in (("gate", split), ("fresh", "fresh"))
        }
    model.train()
    return out


def relearning_check(model, tokenizer, spec: DownskillConfig, skill, start: float, ctx=None) -> CheckResult:  # noqa: ANN001
    """Fine-tune a copy of the chosen checkpoint on the skill's ``relearn`` split (the policy's
    budget: steps, examples, lr) and measure the skill on the gate split after every step.

    Unlearning that only hides a skill comes back within a few steps. The check passes when the
    skill never gets back to half of where it started (``start``: its gate-split value before
    the downskill) within the budget; the curve and the steps to recover are reported.
    """
    from kernel_lifecycle.boundary.evaluate import measure_skill
    from kernel_lifecycle.training.data import batches, encode_probes, pad_id_of
    from kernel_lifecycle.training.lora import attach_lora
    from kernel_lifecycle.training.loop import train
    from kernel_lifecycle.training.losses import ce_loss

    data = skill.probes("relearn")[: spec.relearn_examples]
    if not data:
        return CheckResult(
            name="relearning", passed=False,
            detail=f"{skill.name} has no relearn split ({skill.root}/relearn.jsonl): the check cannot run; add probes disjoint from every measured split",
        )
    probe_model = copy.deepcopy(model).merge_and_unload()
    probe_model = attach_lora(probe_model, adapter_name="relearn", r=spec.rank, alpha=spec.lora_alpha, seed=spec.seed + 1)
    curve: list[float] = []

    def measure(step: int, m) -> None:  # noqa: ANN001
        value = measure_skill(
            m, tokenizer, skill=skill, split=spec.harness.split, max_problems=spec.relearn_problems,
            max_new_tokens=spec.harness.max_new_tokens, seed=spec.seed,
        ).value
        curve.append(value)
        if ctx is not None:
            ctx.log_metric(f"relearning.{skill.name}", value, step=step)

    train(
        probe_model,
        batches(encode_probes(data, tokenizer), batch_size=spec.batch_size, seed=spec.seed + 2, pad_id=pad_id_of(tokenizer)),
        loss_fn=ce_loss, steps=spec.relearn_steps, lr=spec.relearn_lr, seed=spec.seed, checkpoint_every=1, on_checkpoint=measure,
    )
    del probe_model
    half = 0.5 * start
    recovered = next((i for i, v in enumerate(curve, start=1) if start > 0 and v >= half), None)
    shape = ", ".join(f"{v:.3f}" for v in curve)
    return CheckResult(
        name="relearning",
        passed=recovered is None,
        detail=(
            f"{skill.name} on the {spec.harness.split} split (first {spec.relearn_problems or 'all'} problems) after each of {spec.relearn_steps} relearning steps "
            f"(lr {spec.relearn_lr}, {len(data)} relearn probes): {shape}; started at {start:.3f} before the downskill; "
            + (f"back above half the start ({half:.3f}) after {recovered} step(s): the skill was hidden, not removed"
               if recovered is not None else f"not back to half the start ({half:.3f}) within the budget")
        ),
        numbers={
            "start": start, "half_start": half, "after_relearning": curve[-1] if curve else 0.0,
            "steps": float(spec.relearn_steps), "examples": float(len(data)),
            "steps_to_recover": float(recovered) if recovered is not None else -1.0,
        },
        curve=curve,
    )
