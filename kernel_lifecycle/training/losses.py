"""Token-level losses on solution tokens, shared by the jobs and the unlearning methods."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernel_lifecycle.training.data import IGNORE_INDEX, Batch


def next_token_targets(labels: torch.Tensor) -> torch.Tensor:
    # Position t predicts token t+1. Shifting the labels (not the logits) lets cross_entropy
    # read the logits as a view instead of copying a (batch, time, vocab) slice.
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)


def _token_nll(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token NLL (batch, time) on solution tokens, and the mask of those tokens."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    targets = next_token_targets(batch.labels)
    nll = F.cross_entropy(
        logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="none"
    ).view_as(targets)
    return nll, targets != IGNORE_INDEX


def nll(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Mean negative log-likelihood per solution token: the plain CE of upskill and retain."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    targets = next_token_targets(batch.labels)
    # A summed reduction skips the per-token intermediate that sequence_logprob needs.
    total = F.cross_entropy(
        logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return total / (targets != IGNORE_INDEX).sum().clamp(min=1)


def sequence_logprob(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """log p(solution | prompt) per sequence, shape (batch,): the quantity NPO compares."""
    token_nll, _ = _token_nll(model, batch)  # ignored positions are already 0
    return -token_nll.sum(dim=1)


def ce_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """The step-loop loss for learning a skill (upskill, negation's skill vector)."""
    return nll(model, batch)
