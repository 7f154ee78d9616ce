"""The relearning check: does a retired skill come back after a short fine-tune?

Unlearning that only hides a skill lets it return within a few steps of training on a little
of its data. A copy of the candidate is fine-tuned on the skill's ``relearn`` split (disjoint
from every measured split) within the policy's budget (steps, examples, lr), and the skill is
measured on the gate split after every step. The check passes when the skill never gets back to
half of where it started (``start``: its gate-split value before the downskill) within the
budget; the curve and the steps to recover are reported, and logged as a step metric.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from kernel_lifecycle.boundary import prompts
from kernel_lifecycle.boundary.evaluate import measure_skill
from kernel_lifecycle.boundary.report import CheckResult
from kernel_lifecycle.boundary.skills import Skill
from kernel_lifecycle.training.data import batches, encode_probes, pad_id_of
from kernel_lifecycle.training.lora import attach_lora
from kernel_lifecycle.training.loop import train
from kernel_lifecycle.training.losses import ce_loss

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


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


def relearning_check(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, skill: Skill, *, start: float, budget: RelearnBudget,
    log_metric: Callable[[str, float, int], None] | None = None,
) -> CheckResult:
    """Fine-tune a merged copy of ``model`` (a PeftModel) on ``skill``'s relearn split within
    ``budget``, measuring the skill after every step (see the module doc)."""
    data = skill.probes("relearn")[: budget.examples]
    if not data:
        return CheckResult(
            name="relearning", passed=False,
            detail=f"{skill.name} has no relearn split ({skill.root}/relearn.jsonl): the check cannot run; add probes disjoint from every measured split",
        )
    probe_model = copy.deepcopy(model).merge_and_unload()
    probe_model = attach_lora(probe_model, adapter_name="relearn", r=budget.rank, alpha=budget.alpha, seed=budget.seed + 1)
    curve: list[float] = []

    def measure(step: int, m: PreTrainedModel) -> None:
        value = measure_skill(
            m, tokenizer, skill=skill, split=budget.split, max_problems=budget.problems,
            max_new_tokens=budget.max_new_tokens, seed=budget.seed,
        ).value
        curve.append(value)
        if log_metric is not None:
            log_metric(f"relearning.{skill.name}", value, step)

    train(
        probe_model,
        batches(encode_probes(data, tokenizer, **prompts.answer_kind(skill)), batch_size=budget.batch_size, seed=budget.seed + 2, pad_id=pad_id_of(tokenizer)),
        loss_fn=ce_loss, steps=budget.steps, lr=budget.lr, seed=budget.seed, checkpoint_every=1, on_checkpoint=measure,
    )
    del probe_model
    half = 0.5 * start
    recovered = next((i for i, v in enumerate(curve, start=1) if start > 0 and v >= half), None)
    shape = ", ".join(f"{v:.3f}" for v in curve)
    return CheckResult(
        name="relearning",
        passed=recovered is None,
        detail=(
            f"{skill.name} on the {budget.split} split (first {budget.problems or 'all'} problems) after each of {budget.steps} relearning steps "
            f"(lr {budget.lr}, {len(data)} relearn probes): {shape}; started at {start:.3f} before the downskill; "
            + (f"back above half the start ({half:.3f}) after {recovered} step(s): the skill was hidden, not removed"
               if recovered is not None else f"not back to half the start ({half:.3f}) within the budget")
        ),
        numbers={
            "start": start, "half_start": half, "after_relearning": curve[-1] if curve else 0.0,
            "steps": float(budget.steps), "examples": float(len(data)),
            "steps_to_recover": float(recovered) if recovered is not None else -1.0,
        },
        curve=curve,
    )
