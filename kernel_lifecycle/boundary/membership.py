"""A membership signal for a retired skill (MUSE's PrivLeak, with Min-K% probability).

A model that still holds its training examples assigns them higher likelihood than unseen
problems of the same kind. Min-K% (Shi et al., 2024) scores a text by the mean log-probability
of its k% least likely solution tokens: a memorised text has few surprising tokens. Over the
retired skill's ``train`` probes (what the lineage was taught: members) and its held-out
``test`` probes (same families, never trained on: non-members), the AUC of that score says how
well membership can be told apart: 0.5 for a model that never saw either. The candidate's AUC
is reported beside the reference's (a model that never knew the skill), and the difference is
the leak; the check fails on it only when the policy sets ``gate.membership.max_gap``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kernel_lifecycle.boundary import prompts
from kernel_lifecycle.boundary.report import CheckResult, Reference
from kernel_lifecycle.boundary.skills import Probe, Skill
from kernel_lifecycle.training.data import IGNORE_INDEX, Example, encode_probes

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MEMBERS, NON_MEMBERS = "train", "test"


def min_k_score(token_logprobs: Sequence[float], k: float) -> float:
    """Mean of the lowest ``ceil(k * n)`` token log-probabilities (at least one)."""
    if not token_logprobs:
        raise ValueError("no solution tokens to score")
    lowest = sorted(token_logprobs)[: max(1, math.ceil(k * len(token_logprobs)))]
    return sum(lowest) / len(lowest)


def solution_logprobs(model: PreTrainedModel, example: Example) -> list[float]:
    """log p(token | prefix) of every labelled (solution) token of ``example``."""
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([example.input_ids], device=device)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, :-1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    targets = torch.tensor(example.labels[1:], device=device)
    keep = targets != IGNORE_INDEX
    return logprobs[keep].gather(1, targets[keep].unsqueeze(1)).squeeze(1).tolist()


def min_k_scores(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, skill: Skill, probes: Sequence[Probe], *, k: float) -> list[float]:
    examples = encode_probes(probes, tokenizer, what=f"{skill.name} membership probes", **prompts.answer_kind(skill))
    model.eval()
    return [min_k_score(solution_logprobs(model, e), k) for e in examples]


def membership_auc(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, skill: Skill, *, probes: int, k: float) -> float:
    """AUC of the Min-K% score telling the skill's train probes (members) from its test probes."""
    from sklearn.metrics import roc_auc_score

    members = min_k_scores(model, tokenizer, skill, skill.probes(MEMBERS)[:probes], k=k)
    others = min_k_scores(model, tokenizer, skill, skill.probes(NON_MEMBERS)[:probes], k=k)
    return float(roc_auc_score([1] * len(members) + [0] * len(others), members + others))


def membership_check(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, skill: Skill, *, reference: Reference,
    reference_model: PreTrainedModel | None = None, reference_tokenizer: PreTrainedTokenizerBase | None = None,
    probes: int = 64, k: float = 0.2, max_gap: float | None = None,
) -> CheckResult:
    """The candidate's membership AUC and the reference's; fails only when ``max_gap`` is set and
    the candidate's AUC exceeds the reference's by more (without a reference: exceeds 0.5)."""
    if not skill.probes(MEMBERS) or not skill.probes(NON_MEMBERS):
        return CheckResult(name="membership", passed=max_gap is None, reference=reference,
                           detail=f"{skill.name} lacks a {MEMBERS} or {NON_MEMBERS} split: no membership signal")
    auc = membership_auc(model, tokenizer, skill, probes=probes, k=k)
    ref_auc = (membership_auc(reference_model, reference_tokenizer or tokenizer, skill, probes=probes, k=k)
               if reference_model is not None and reference.kind != "none" else None)
    baseline = 0.5 if ref_auc is None else ref_auc
    gap = auc - baseline
    ok = max_gap is None or gap <= max_gap
    against = f"the reference {reference.name} {ref_auc:.3f}" if ref_auc is not None else "chance 0.500 (no reference)"
    return CheckResult(
        name="membership", passed=ok, reference=reference,
        detail=(
            f"Min-{100 * k:.0f}% AUC of {skill.name} {MEMBERS} vs {NON_MEMBERS} probes ({probes} each at most): candidate {auc:.3f} vs "
            f"{against}, gap {gap:+.3f}"
            + (" (reported, not gated)" if max_gap is None else f" {'<=' if ok else '>'} allowed {max_gap:.2f}")
        ),
        numbers={"auc": auc, "auc_reference": baseline, "gap": gap, "k": k, "probes": float(probes),
                 **({"max_gap": max_gap} if max_gap is not None else {})},
    )
