"""Adapter negation (task arithmetic): learn the skill, then subtract it.

Phase 1 trains the job's adapter on the forget skill with plain CE: a "skill vector" dW = s*B@A.
Phase 2 builds the negated adapter with peft's ``add_weighted_adapter([skill], [-w])`` and makes
it the active one (the skill vector is deleted). With a single adapter peft always uses the
"linear" combination, which here is exact: it writes A' = -sqrt(w*s)*A, B' = sqrt(w*s)*B with
scaling 1 (lora_alpha = r), so B'@A' = -w*s*B@A = -w*dW. ("cat" would be exact too; the SVD
variants are approximations.) It needs no retain data and no reference model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field

from kernel_lifecycle.errors import JobError
from kernel_lifecycle.unlearning.base import StepMethod

if TYPE_CHECKING:
    import torch
    from peft import PeftModel

    from kernel_lifecycle.training.data import Pair
    from kernel_lifecycle.training.loop import TrainResult


@dataclass
class Negation(StepMethod):
    name: ClassVar[str] = "negation"
    needs_retain: ClassVar[bool] = False

    negation_weight: Annotated[float, Field(gt=0.0)] = 1.0

    def run(self, model: torch.nn.Module, pairs: Iterable[Pair], **loop: Any) -> TrainResult:
        """Train the skill vector for ``steps`` steps, then negate it.

        There is one checkpoint, after negation: the models in between are *learning* the
        retired skill, so evaluating them as unlearning candidates would be meaningless.
        The active adapter afterwards is the negated one (see ``training.lora.active_adapter``).
        """
        # lazy: training loads torch; policy checks read options without it
        from kernel_lifecycle.training import lora, losses, loop as step_loop

        if not hasattr(model, "add_weighted_adapter"):
            raise JobError("negation needs a LoRA adapter attached to the model (attach_lora)")
        skill = lora.active_adapter(model)
        if model.peft_config[skill].use_rslora:
            raise JobError("negation needs an adapter without rsLoRA: peft would not negate it exactly")
        loop.pop("checkpoint_every", None)  # one checkpoint only, see above
        on_checkpoint = loop.pop("on_checkpoint", None)
        result = step_loop.train(model, (pair.forget for pair in pairs), loss_fn=losses.ce_loss, **loop)
        negate_adapter(model, skill, weight=self.negation_weight)
        model.delete_adapter(skill)
        if on_checkpoint is not None:
            model.eval()
            on_checkpoint(result.steps, model)
        return result


def negate_adapter(model: PeftModel, adapter: str, *, weight: float = 1.0) -> str:
    """Add ``<adapter>_negated`` = -weight * adapter and make it active; returns its name."""
    if weight <= 0:
        raise JobError(f"negation_weight must be positive, got {weight}")
    negated = f"{adapter}_negated"
    model.add_weighted_adapter([adapter], [-weight], adapter_name=negated, combination_type="linear")
    model.set_adapter(negated)
    return negated
