"""Gradient difference: ascend the forget NLL, descend the retain NLL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from kernel_lifecycle.unlearning.base import StepMethod, require_retain

if TYPE_CHECKING:
    import torch

    from kernel_lifecycle.training.data import Batch


@dataclass
class GradDiff(StepMethod):
    name = "grad_diff"

    retain_weight: Annotated[float, Field(ge=0.0)] = 1.0

    def loss(self, model: torch.nn.Module, forget: Batch, retain: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from kernel_lifecycle.training.losses import nll  # lazy: training loads torch; policy checks read options without it

        retain = require_retain(self.name, retain)
        forget_nll = nll(model, forget)
        retain_nll = nll(model, retain)
        loss = -forget_nll + self.retain_weight * retain_nll
        return loss, {"forget_nll": forget_nll.detach(), "retain_nll": retain_nll.detach()}
