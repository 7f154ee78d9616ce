"""Gradient difference: ascend the forget NLL, descend the retain NLL."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kernel_lifecycle.training.data import Batch
from kernel_lifecycle.training.losses import nll
from kernel_lifecycle.unlearning.base import StepMethod, require_retain


@dataclass
class GradDiff(StepMethod):
    name = "grad_diff"

    retain_weight: float = 1.0

    def loss(self, model: torch.nn.Module, forget: Batch, retain: Batch | None):
        retain = require_retain(self.name, retain)
        forget_nll = nll(model, forget)
        retain_nll = nll(model, retain)
        loss = -forget_nll + self.retain_weight * retain_nll
        return loss, {"forget_nll": forget_nll.detach(), "retain_nll": retain_nll.detach()}
