"""SimNPO, reference-free NPO (Fan et al. 2024, "Simplicity Prevails").

NPO compares each forget sequence with the reference model; SimNPO drops the reference and
normalizes by length: its forget loss is -(2/beta) * logsigmoid(beta * nll - margin) averaged
over forget sequences, where ``nll`` is the sequence's mean negative log-likelihood per solution
token (-(1/|y|) log p_theta(y|x)) and ``margin`` is the paper's gamma. Long solutions no longer
dominate (NPO's log-ratio grows with length), and no adapter-off forward is needed. Like NPO it
saturates: once a sequence's per-token NLL is well above margin/beta its gradient fades. A retain
NLL term keeps the skills the policy wants kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from kernel_lifecycle.unlearning.base import StepMethod, require_retain

if TYPE_CHECKING:
    import torch

    from kernel_lifecycle.training.data import Batch


@dataclass
class SimNPO(StepMethod):
    name = "simnpo"

    beta: Annotated[float, Field(gt=0.0)] = 2.5
    margin: Annotated[float, Field(ge=0.0)] = 0.0  # the paper's gamma
    retain_weight: Annotated[float, Field(ge=0.0)] = 1.0

    def loss(self, model: torch.nn.Module, forget: Batch, retain: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        import torch.nn.functional as F

        from kernel_lifecycle.training.data import IGNORE_INDEX  # lazy: training loads torch; policy checks read options without it
        from kernel_lifecycle.training.losses import next_token_targets, nll, sequence_logprob  # lazy: as above

        retain = require_retain(self.name, retain)
        lengths = (next_token_targets(forget.labels) != IGNORE_INDEX).sum(dim=1).clamp(min=1)  # solution tokens per sequence
        per_token_nll = -sequence_logprob(model, forget) / lengths
        forget_loss = -(2.0 / self.beta) * F.logsigmoid(self.beta * per_token_nll - self.margin).mean()
        retain_nll = nll(model, retain)
        loss = forget_loss + self.retain_weight * retain_nll
        return loss, {
            "forget_loss": forget_loss.detach(),
            "forget_nll_per_token": per_token_nll.detach().mean(),
            "retain_nll": retain_nll.detach(),
        }
