"""downskill: retire a deprecated skill with a forget loss + a retain loss on a new LoRA adapter.

Top to bottom:
1. check everything that can be refused (method name, skills, data) before loading a model;
2. open the job (``context.open_job``): the parent kernel (base + its adapters merged) with a
   fresh LoRA adapter attached;
3. train with the method's loss; every ``eval_every`` steps measure the retired skill and the
   retained ones on a fixed dev subset, log both curves as MLflow step metrics, keep the adapter;
4. choose the *boundary* checkpoint: the first where the retired skill's upper bound is at or
   under its ceiling and every retained skill is within tolerance of where it started;
5. re-measure that checkpoint with the full harness (gate split, fresh, all checks); say
   whether the fresh claim means anything (vacuous when the kernel was already under the
   ceiling on fresh before the downskill); then the forgetting checks: relearning
   (``boundary.relearning``: a short fine-tune on the skill's ``relearn`` split, on the candidate
   and on a reference that never knew the skill, ``boundary.reference``, chosen in step 1), the
   retain-only control (the same budget on retained data only: does the skill come back
   unshown?) and the membership signal (``boundary.membership``); for the retired skill the
   truncation check asks only whether a doubled budget brings it back (``checks``);
6. close the job: the bundle (parent's adapters + this one) registered as the candidate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kernel_lifecycle.boundary.checks import with_retired_truncation
from kernel_lifecycle.boundary.evaluate import measure_skill
from kernel_lifecycle.boundary.membership import membership_check
from kernel_lifecycle.boundary.plot import plot_relearning
from kernel_lifecycle.boundary.reference import choose_reference, load_reference
from kernel_lifecycle.boundary.relearning import RelearnBudget, relearning_check, retain_only_check
from kernel_lifecycle.boundary.report import CheckResult, Forgetting, Reference, SkillMetrics
from kernel_lifecycle.boundary.skills import Skill
from kernel_lifecycle.boundary.tracking import load_version_report
from kernel_lifecycle.display import SILENT, Display
from kernel_lifecycle.errors import JobError, RefusedError
from kernel_lifecycle.jobs import common
from kernel_lifecycle.jobs.config import DownskillConfig, plan_hyperparameters
from kernel_lifecycle.jobs.context import open_job
from kernel_lifecycle.jobs.runner import JobContext
from kernel_lifecycle.policy.schema import Policy
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.training.data import batches, paired_batches, pad_id_of
from kernel_lifecycle.training.lora import active_adapter
from kernel_lifecycle.unlearning import get_method

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def policy_fields(policy: Policy) -> dict[str, Any]:
    """What a downskill reads of a policy: its downskill plan and the gate's relearning budget."""
    plan = policy.plans.downskill
    if plan is None:
        raise JobError(f"the policy of {policy.kernel} has no downskill plan")
    return {
        **plan_hyperparameters(plan),
        "skill": plan.skill,
        "retain": list(plan.retain) or [s.name for s in policy.skills.retained],
        "method": plan.method,
        "method_options": plan.method_options(),
        "target": plan.target,
        "target_heads": plan.target_heads,
        "relearn_steps": policy.gate.relearning.steps,
        "relearn_examples": policy.gate.relearning.examples,
        "relearn_lr": policy.gate.relearning.lr,
        "relearn_problems": policy.gate.relearning.max_problems,
        "relearn_reference": policy.gate.relearning.reference,
        "relearn_tolerance": policy.gate.relearning.tolerance,
        "membership_probes": policy.gate.membership.probes,
        "membership_k": policy.gate.membership.k,
        "membership_max_gap": policy.gate.membership.max_gap,
    }


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


def run(spec: DownskillConfig, *, actor: str, trigger_id: str | None = None, display: Display = SILENT) -> registry.KernelVersion:
    from peft import set_peft_model_state_dict

    all_skills = check_data(spec)
    forget_skill = {spec.skill: all_skills[spec.skill]}
    retain_skills = {name: all_skills[name] for name in spec.retain}
    method = get_method(spec.method, **spec.method_options)
    reference = choose_relearning_reference(spec)  # refused here, before any training, when it cannot be had

    with open_job(spec, all_skills, actor=actor, trigger_id=trigger_id, display=display) as job:
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
        report.checks = with_retired_truncation(
            report.checks, retired=[spec.skill], alpha=spec.checks.alpha, max_truncated_share=spec.checks.max_truncated_share,
        )
        report.checks += forgetting_checks(
            model, tokenizer, spec, all_skills[spec.skill], retain_skills, reference=reference, start=before["gate"].value,
            now=report.skills[spec.skill], ctx=ctx,
        )
        return job.register(
            report, skill=spec.skill,
            retained=[s for s in job.parent.retained_skills if s != spec.skill] or list(spec.retain),
            retired=sorted({*job.parent.retired_skills, spec.skill}),
            policy_sha256=spec.policy_sha256,
            description=f"downskill of {spec.skill} ({spec.method}) from v{job.parent_kv.version}; boundary at step {chosen}",
        )


def choose_relearning_reference(spec: DownskillConfig) -> Reference:
    """The reference the relearning check compares with (``boundary.reference``), from the
    parent's lineage and the policy's choice."""
    parent = registry.resolve(spec.from_ref or spec.kernel)
    return choose_reference(registry.lineage(parent.name, parent), spec.skill, choice=spec.relearn_reference)


def forgetting_checks(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, spec: DownskillConfig, skill: Skill, retained: dict[str, Skill], *,
    reference: Reference, start: float, now: SkillMetrics, ctx: JobContext,
) -> list[CheckResult]:
    """Relearning (against ``reference``), the retain-only control and the membership signal;
    the two relearning curves plotted to the run (``boundary/relearning.png``)."""
    budget = relearn_budget(spec)
    ref_model, ref_tokenizer = load_reference(reference) if reference.kind != "none" else (None, None)
    ctx.log_params({"relearning.reference": f"{reference.kind}: {reference.name}"})
    relearning = relearning_check(
        model, tokenizer, skill, start=start, budget=budget, reference=reference, reference_model=ref_model,
        reference_tokenizer=ref_tokenizer, log_metric=ctx.log_metric,
    )
    control = retain_only_check(model, tokenizer, skill, retained, before=now, budget=budget, log_metric=ctx.log_metric)
    membership = membership_check(
        model, tokenizer, skill, reference=reference, reference_model=ref_model, reference_tokenizer=ref_tokenizer,
        probes=spec.membership_probes, k=spec.membership_k, max_gap=spec.membership_max_gap,
    )
    del ref_model
    ctx.log_artifact(plot_relearning(relearning, skill=skill.name, path=ctx.workdir / "relearning.png"), "boundary")
    return [relearning, control, membership]


def relearn_budget(spec: DownskillConfig) -> RelearnBudget:
    """The relearning check's budget from a downskill's config (the policy's gate.relearning)."""
    return RelearnBudget(
        steps=spec.relearn_steps, examples=spec.relearn_examples, lr=spec.relearn_lr, problems=spec.relearn_problems,
        split=spec.harness.split, max_new_tokens=spec.harness.max_new_tokens, rank=spec.rank, alpha=spec.lora_alpha,
        batch_size=spec.batch_size, seed=spec.seed, tolerance=spec.relearn_tolerance, significance=spec.checks.alpha,
    )


def starting_point(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, spec: DownskillConfig, parent_kv: registry.KernelVersion, skill: Skill,
) -> dict[str, SkillMetrics]:
    """The retired skill before the downskill, on the gate split and on fresh: from the parent
    version's registered report when it stands for this measurement (``reusable_for``), else
    measured now on the unchanged model (its new adapter is still a no-op)."""
    import torch

    split = spec.harness.split
    try:
        parent = load_version_report(parent_kv)
    except RefusedError:  # registered without a report (by hand): measure instead
        parent = None
    digests = {f"{skill.name}/{split}": skill.digest(split), f"{skill.name}/fresh": skill.digest("fresh")}
    if parent is not None and parent.reusable_for(skill.name, spec.harness, digests):
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
