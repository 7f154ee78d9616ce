"""Gradient ascent on the forget NLL alone: the known-bad baseline.

It has no retain term and no saturation, so it keeps pushing until the model forgets much more
than the retired skill (retained skills collapse with it). It is here to compare against, and
the retain batch of each pair is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel_lifecycle.unlearning.base import StepMethod

if TYPE_CHECKING:
    import torch

    from kernel_lifecycle.training.data import Batch


@dataclass
class GradAscent(StepMethod):
    name = "grad_ascent"
    needs_retain = False

    def loss(self, model: torch.nn.Module, forget: Batch, retain: Batch | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from kernel_lifecycle.training.losses import nll  # lazy: training loads torch; policy checks read options without it

        forget_nll = nll(model, forget)
        return -forget_nll, {"forget_nll": forget_nll.detach()}
