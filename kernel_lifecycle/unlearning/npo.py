"""NPO, Negative Preference Optimization (Zhang et al. 2024), the default method.

Forget loss: -(2/beta) * logsigmoid(-beta * (log p_theta(y|x) - log p_ref(y|x))), averaged over
forget sequences. Unlike gradient ascent it saturates: once a forget sequence is much less
likely than under the reference its gradient fades, so the model is not driven to collapse.
A retain NLL term keeps the skills the policy wants kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from kernel_lifecycle.unlearning.base import StepMethod, reference_model, require_retain

if TYPE_CHECKING:
    import torch

    from kernel_lifecycle.training.data import Batch


@dataclass
class NPO(StepMethod):
    name = "npo"

    beta: Annotated[float, Field(gt=0.0)] = 0.1
    retain_weight: Annotated[float, Field(ge=0.0)] = 1.0

    def loss(self, model: torch.nn.Module, forget: Batch, retain: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        import torch.nn.functional as F

        from kernel_lifecycle.training.losses import nll, sequence_logprob  # lazy: training loads torch; policy checks read options without it

        retain = require_retain(self.name, retain)
        # Reference first: it builds no graph, so peak memory stays that of one forward.
        with reference_model(model):
            logp_ref = sequence_logprob(model, forget)
        logp = sequence_logprob(model, forget)
        log_ratio = logp - logp_ref
        forget_loss = -(2.0 / self.beta) * F.logsigmoid(-self.beta * log_ratio).mean()
        retain_nll = nll(model, retain)
        loss = forget_loss + self.retain_weight * retain_nll
        return loss, {
            "forget_loss": forget_loss.detach(),
            "forget_log_ratio": log_ratio.detach().mean(),
            "retain_nll": retain_nll.detach(),
        }
