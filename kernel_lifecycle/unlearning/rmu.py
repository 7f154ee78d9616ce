"""RMU, Representation Misdirection for Unlearning (Li et al. 2024, the WMDP paper).

At one decoder layer, the model's activations on the retired skill's solution tokens are pushed
toward a fixed random direction, scaled up, so that later layers read noise where the skill used
to be; on retained skills' solution tokens the activations are held near the frozen model's
(the same weights with the job's adapter switched off):

    forget = mean over forget solution tokens of mean_d (h(x) - c*u)^2
    retain = mean over retain solution tokens of mean_d (h(x) - h_frozen(x))^2
    loss   = forget + retain_weight * retain

``u`` is WMDP's control vector: uniform [0, 1) draws normalised to unit length, from
``vector_seed``. WMDP fixes c by hand for each model (6.5 for Zephyr-7B); here c is
``steering_scale`` times the mean norm of the frozen model's activations on the first forget
batch (the adaptive coefficient of Dang et al. 2025), so one default fits any width. Only
adapter weights at or below ``layer`` get gradients; ``layer`` defaults to a quarter of the way
in (WMDP: layer 7 of 32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from kernel_lifecycle.errors import JobError
from kernel_lifecycle.unlearning.base import StepMethod, reference_model, require_retain

if TYPE_CHECKING:
    import torch

    from kernel_lifecycle.training.data import Batch


@dataclass
class RMU(StepMethod):
    name = "rmu"

    layer: Annotated[int | None, Field(ge=0)] = None  # None: num_hidden_layers // 4
    steering_scale: Annotated[float, Field(gt=0.0)] = 5.0
    retain_weight: Annotated[float, Field(ge=0.0)] = 100.0
    vector_seed: Annotated[int, Field(ge=0)] = 0

    def loss(self, model: torch.nn.Module, forget: Batch, retain: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        retain = require_retain(self.name, retain)
        block = decoder_layer(model, self.layer)
        if not hasattr(self, "_target_direction"):
            with reference_model(model):
                frozen_forget = layer_output(model, block, forget)
            self._target_direction = self.control_vector(frozen_forget, forget)
        forget_act = layer_output(model, block, forget)
        forget_loss = masked_mse(forget_act, self._target_direction.to(forget_act.dtype), forget)
        with reference_model(model):
            frozen_retain = layer_output(model, block, retain)
        retain_loss = masked_mse(layer_output(model, block, retain), frozen_retain, retain)
        loss = forget_loss + self.retain_weight * retain_loss
        return loss, {"forget_mse": forget_loss.detach(), "retain_mse": retain_loss.detach(),
                      "steering_norm": self._target_direction.norm()}

    def control_vector(self, frozen_forget: torch.Tensor, forget: Batch) -> torch.Tensor:
        """c * u: u uniform [0, 1) normalised (WMDP), c = steering_scale x the frozen model's
        mean activation norm on this batch's forget solution tokens."""
        import torch

        u = torch.rand(frozen_forget.shape[-1], generator=torch.Generator().manual_seed(self.vector_seed))
        u = u / u.norm()
        mask = solution_mask(forget).to(frozen_forget.dtype)
        mean_norm = (frozen_forget.norm(dim=-1) * mask).sum() / mask.sum().clamp(min=1)
        return self.steering_scale * mean_norm * u


def decoder_layer(model: torch.nn.Module, layer: int | None) -> torch.nn.Module:
    """The model's decoder layer ``layer`` (``None``: a quarter of the way in); a clear error when out of range."""
    blocks = [m for name, m in model.named_modules() if name.rsplit(".", 2)[-2:-1] == ["layers"] and name.rsplit(".", 1)[-1].isdigit()]
    if not blocks:
        raise JobError(f"rmu cannot find the decoder layers of {type(model).__name__} (expected modules named ...layers.<i>)")
    index = len(blocks) // 4 if layer is None else layer
    if index >= len(blocks):
        raise JobError(f"rmu layer {layer} does not exist: the model has {len(blocks)} decoder layers (0 to {len(blocks) - 1}); set options.layer lower")
    return blocks[index]


def layer_output(model: torch.nn.Module, block: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """The hidden states ``block`` outputs for ``batch`` (batch, time, width), by a forward hook."""
    seen: list[Any] = []
    handle = block.register_forward_hook(lambda _m, _i, out: seen.append(out[0] if isinstance(out, tuple) else out))
    try:
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    finally:
        handle.remove()
    return seen[0]


def masked_mse(activations: torch.Tensor, target: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean over the batch's solution tokens of the mean squared difference over the width."""
    mask = solution_mask(batch).to(activations.dtype)
    per_token = (activations - target).pow(2).mean(dim=-1)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


def solution_mask(batch: Batch) -> torch.Tensor:
    """True at the batch's solution tokens (labels set), where RMU reads activations."""
    from kernel_lifecycle.training.data import IGNORE_INDEX  # lazy: training loads torch; policy checks read options without it

    return batch.labels != IGNORE_INDEX
