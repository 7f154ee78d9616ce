"""The relearning check: does a retired skill come back faster than in a model that never knew it?

Unlearning that only hides a skill lets it return within a few steps of training on a little
of its data. A merged copy of the candidate is fine-tuned on the skill's ``relearn`` split
(disjoint from every measured split) within the policy's budget (steps, examples, lr), and the
skill is measured on the gate split's first ``problems`` after every step: the candidate's
relearning curve. The same budget, data and measurement are applied to the *reference*
(``boundary.reference``: an ancestor, the base, or a retrain that never learned the skill).

The check compares the two curves by their area: per problem, the mean of its outcome over the
steps; per problem the candidate's area minus the reference's (paired over problems); the
one-sided ``1 - alpha`` upper bound of the mean difference from a bootstrap over problems. It
passes when that bound is at most the policy's ``tolerance``: the candidate must *show* that
it relearns no faster than a model that never knew the skill, give or take the tolerance (the
burden of proof is on the candidate, as in the gate's non-inferiority rule). The steps each
curve takes to get back to half the skill's starting value are reported beside the areas.

Where no reference can be had the old rule stays, named as weaker: pass when the skill does
not get back to half its start (its gate-split value before the downskill) within the budget.
That line is arbitrary: on two machines it gave opposite verdicts from the same code.

:func:`retain_only_check` is the control: the same budget spent on the *retained* skills' train
data only. A retired skill that comes back without being shown was hidden, not removed: it
fails when significantly more problems are solved after the control than before (an exact
one-sided sign test over the problems that changed).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kernel_lifecycle.boundary import prompts
from kernel_lifecycle.boundary.evaluate import measure_skill
from kernel_lifecycle.boundary.metrics import bootstrap_means
from kernel_lifecycle.boundary.report import CheckResult, Reference, SkillMetrics
from kernel_lifecycle.boundary.skills import Skill
from kernel_lifecycle.training.data import Example, batches, encode_probes, pad_id_of
from kernel_lifecycle.training.lora import attach_lora
from kernel_lifecycle.training.loop import train
from kernel_lifecycle.training.losses import ce_loss

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

NO_REFERENCE = Reference(kind="none", name="none", why="no reference was given: the half-start rule (weaker)")


class RelearnBudget(BaseModel):
    """What the relearning fine-tune may spend (the policy's ``gate.relearning``) and how it is measured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(gt=0)
    examples: int = Field(gt=0)
    lr: float = Field(gt=0.0, lt=1.0)
    problems: int | None = Field(default=None, gt=0, description="gate-split problems measured per step; None: all")
    split: str = "test"  # the gate split
    max_new_tokens: int = Field(gt=0)
    rank: int = Field(default=8, gt=0)
    alpha: float = Field(default=16.0, gt=0.0)
    batch_size: int = Field(default=8, gt=0)
    seed: int = 0
    tolerance: float = Field(default=0.10, ge=0.0, le=1.0, description="allowed excess of the candidate's area over the reference's")
    significance: float = Field(default=0.05, gt=0.0, le=0.5, description="one-sided level of the area bound")


@dataclass(frozen=True)
class Curve:
    """A skill measured after every relearning step: the rate, and each problem's score."""

    values: list[float]
    problems: list[dict[str, float]]  # per step: task_id -> score (pass@1 of its samples)


def relearn(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, skill: Skill, examples: Sequence[Example], budget: RelearnBudget,
    *, measure_every: int = 1, log: Callable[[float, int], None] | None = None,
) -> Curve:
    """Fine-tune a merged copy of ``model`` (a fresh LoRA adapter, the budget's rank) on
    ``examples`` for ``budget.steps`` steps, measuring ``skill`` every ``measure_every`` steps."""
    probe_model = copy.deepcopy(model)
    if hasattr(probe_model, "merge_and_unload"):  # a PeftModel: its adapters become the weights
        probe_model = probe_model.merge_and_unload()
    probe_model = attach_lora(probe_model, adapter_name="relearn", r=budget.rank, alpha=budget.alpha, seed=budget.seed + 1)
    values: list[float] = []
    problems: list[dict[str, float]] = []

    def measure(step: int, m: PreTrainedModel) -> None:
        metrics = measure_skill(
            m, tokenizer, skill=skill, split=budget.split, max_problems=budget.problems,
            max_new_tokens=budget.max_new_tokens, seed=budget.seed,
        )
        values.append(metrics.value)
        problems.append(problem_scores(metrics))
        if log is not None:
            log(metrics.value, step)

    train(
        probe_model,
        batches(list(examples), batch_size=budget.batch_size, seed=budget.seed + 2, pad_id=pad_id_of(tokenizer)),
        loss_fn=ce_loss, steps=budget.steps, lr=budget.lr, seed=budget.seed, checkpoint_every=measure_every, on_checkpoint=measure,
    )
    del probe_model
    return Curve(values, problems)


def problem_scores(metrics: SkillMetrics) -> dict[str, float]:
    return {p.task_id: p.c / p.n if p.n else 0.0 for p in metrics.problems}


def steps_to_recover(values: Sequence[float], line: float) -> int | None:
    """The first step (1-based) at or above ``line``; None when the curve never gets there
    (or when there is nothing to recover: ``line`` <= 0)."""
    if line <= 0:
        return None
    return next((i for i, v in enumerate(values, start=1) if v >= line), None)


@dataclass(frozen=True)
class AreaComparison:
    """Candidate vs reference relearning areas, paired over the problems both measured."""

    candidate: float  # mean over problems and steps of the candidate's scores
    reference: float
    excess: float  # candidate - reference
    upper: float  # one-sided (1 - significance) bootstrap upper bound of the excess
    n_problems: int

    def passed(self, tolerance: float) -> bool:
        return self.upper <= tolerance


def compare_areas(candidate: Curve, reference: Curve, *, significance: float, seed: int = 0) -> AreaComparison:
    """Per problem, the area under its relearning curve (its mean score over the steps), then
    the paired difference candidate - reference and its bootstrap upper bound over problems."""
    ids = sorted(set.intersection(*(set(p) for p in [*candidate.problems, *reference.problems])))
    if not ids:
        raise ValueError("the candidate's and the reference's relearning curves share no measured problem")
    cand = np.array([[step[i] for step in candidate.problems] for i in ids]).mean(axis=1)
    ref = np.array([[step[i] for step in reference.problems] for i in ids]).mean(axis=1)
    diffs = cand - ref
    upper = float(np.quantile(bootstrap_means(diffs, seed=seed), 1 - significance))
    return AreaComparison(candidate=float(cand.mean()), reference=float(ref.mean()), excess=float(diffs.mean()),
                          upper=upper, n_problems=len(ids))


def relearn_examples(skill: Skill, tokenizer: PreTrainedTokenizerBase, n: int) -> list[Example]:
    return encode_probes(skill.probes("relearn")[:n], tokenizer, what=f"{skill.name} relearn", **prompts.answer_kind(skill))


def _shape(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def _recovered(step: int | None) -> str:
    return "never" if step is None else f"step {step}"


def relearning_check(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, skill: Skill, *, start: float, budget: RelearnBudget,
    reference: Reference = NO_REFERENCE, reference_model: PreTrainedModel | None = None,
    reference_tokenizer: PreTrainedTokenizerBase | None = None, log_metric: Callable[[str, float, int], None] | None = None,
) -> CheckResult:
    """Relearn ``skill`` on the candidate (``model``, a PeftModel or plain) and, when a
    reference model is given, on it under the same budget; judge as the module doc says."""
    if not skill.probes("relearn"):
        return CheckResult(
            name="relearning", passed=False, reference=reference,
            detail=f"{skill.name} has no relearn split ({skill.root}/relearn.jsonl): the check cannot run; add probes disjoint from every measured split",
        )
    examples = relearn_examples(skill, tokenizer, budget.examples)
    logger = (lambda name: (lambda v, s: log_metric(name, v, s))) if log_metric is not None else (lambda name: None)
    cand = relearn(model, tokenizer, skill, examples, budget, log=logger(f"relearning.{skill.name}"))
    half = 0.5 * start
    recovered = steps_to_recover(cand.values, half)
    where = (f"{skill.name} on the {budget.split} split (first {budget.problems or 'all'} problems) after each of {budget.steps} "
             f"relearning steps (lr {budget.lr}, {len(examples)} relearn probes)")
    numbers = {
        "start": start, "half_start": half, "after_relearning": cand.values[-1] if cand.values else 0.0,
        "steps": float(budget.steps), "examples": float(len(examples)),
        "steps_to_recover": float(recovered) if recovered is not None else -1.0,
    }
    if reference.kind == "none" or reference_model is None:
        return CheckResult(
            name="relearning", passed=recovered is None, curve=cand.values, reference=reference, numbers=numbers,
            detail=(
                f"WEAKER RULE, no reference ({reference.why}): {where}: {_shape(cand.values)}; started at {start:.3f} before the downskill; "
                + (f"back above half the start ({half:.3f}) after {recovered} step(s): the skill was hidden, not removed"
                   if recovered is not None else f"not back to half the start ({half:.3f}) within the budget")
            ),
        )
    ref_tok = reference_tokenizer or tokenizer
    ref = relearn(reference_model, ref_tok, skill, relearn_examples(skill, ref_tok, budget.examples), budget,
                  log=logger(f"relearning.reference.{skill.name}"))
    areas = compare_areas(cand, ref, significance=budget.significance, seed=budget.seed)
    ref_recovered = steps_to_recover(ref.values, half)
    ok = areas.passed(budget.tolerance)
    numbers.update({
        "area_candidate": areas.candidate, "area_reference": areas.reference, "area_excess": areas.excess,
        "area_excess_upper": areas.upper, "tolerance": budget.tolerance, "significance": budget.significance,
        "n_problems": float(areas.n_problems), "reference_after_relearning": ref.values[-1] if ref.values else 0.0,
        "reference_steps_to_recover": float(ref_recovered) if ref_recovered is not None else -1.0,
    })
    return CheckResult(
        name="relearning", passed=ok, curve=cand.values, reference=reference, reference_curve=ref.values, numbers=numbers,
        detail=(
            f"{where}, against the reference {reference.name} ({reference.kind}: {reference.why}): "
            f"candidate {_shape(cand.values)}; reference {_shape(ref.values)}; "
            f"area candidate {areas.candidate:.3f} vs reference {areas.reference:.3f} over {areas.n_problems} paired problems, "
            f"excess {areas.excess:+.3f}, {100 * (1 - budget.significance):.0f}% upper bound {areas.upper:+.3f} "
            f"{'<=' if ok else '>'} tolerance {budget.tolerance:.2f}"
            + ("" if ok else ": the candidate relearns faster than a model that never knew the skill (hidden, not removed)")
            + f"; back to half the start ({half:.3f}): candidate {_recovered(recovered)}, reference {_recovered(ref_recovered)}"
        ),
    )


def retain_only_check(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, skill: Skill, retained: Mapping[str, Skill], *,
    before: SkillMetrics, budget: RelearnBudget, log_metric: Callable[[str, float, int], None] | None = None,
) -> CheckResult:
    """The control: the relearning budget spent on the retained skills' train data only
    (``budget.examples`` probes taken in turn from each), then ``skill`` measured; ``before``
    is the candidate's measurement of ``skill`` on the same split (paired by problem)."""
    from scipy.stats import binomtest

    per = max(1, budget.examples // max(1, len(retained)))
    examples = [e for s in retained.values()
                for e in encode_probes(s.probes("train")[:per], tokenizer, what=f"{s.name} train", **prompts.answer_kind(s))]
    if not examples:
        return CheckResult(name="retain_only", passed=False, detail="no retained skill has train probes: the control cannot run")
    log = (lambda v, s: log_metric(f"retain_only.{skill.name}", v, s)) if log_metric is not None else None
    after = relearn(model, tokenizer, skill, examples, budget, measure_every=budget.steps, log=log)
    now, was = after.problems[-1], problem_scores(before)
    ids = sorted(set(now) & set(was))
    gained = sum(1 for i in ids if now[i] > was[i])
    lost = sum(1 for i in ids if now[i] < was[i])
    p = binomtest(gained, gained + lost, 0.5, alternative="greater").pvalue if gained + lost else 1.0
    came_back = p < budget.significance
    value_before = sum(was[i] for i in ids) / len(ids) if ids else 0.0
    value_after = sum(now[i] for i in ids) / len(ids) if ids else 0.0
    return CheckResult(
        name="retain_only", passed=not came_back, curve=after.values,
        detail=(
            f"{budget.steps} steps (lr {budget.lr}) on {len(examples)} train probes of {', '.join(retained)} only, then {skill.name} "
            f"on {len(ids)} {budget.split} problems: {value_before:.3f} -> {value_after:.3f} ({gained} gained, {lost} lost, "
            f"one-sided p={p:.3g})"
            + (f": {skill.name} came back without being shown: hidden, not removed" if came_back else f": {skill.name} did not come back")
        ),
        numbers={"before": value_before, "after": value_after, "gained": float(gained), "lost": float(lost), "p_value": p,
                 "steps": float(budget.steps), "examples": float(len(examples)), "n_problems": float(len(ids))},
    )
