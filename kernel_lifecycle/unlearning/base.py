"""What every unlearning method is, and the pieces the step-loop methods share.

torch is imported where a method trains, not at import: the registry reads a method's options
(its dataclass fields) to validate policies without loading torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ConfigDict

from kernel_lifecycle.errors import JobError

if TYPE_CHECKING:
    import torch

    from kernel_lifecycle.training.data import Batch, Pair
    from kernel_lifecycle.training.loop import TrainResult


@contextmanager
def reference_model(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The model as it was before this job: the same weights with the new adapter switched off.

    No second copy of the weights is kept. Eval mode so that any dropout in the base does not
    make the reference noisy; the caller's train/eval mode is restored afterwards.
    """
    import torch

    if not hasattr(model, "disable_adapter"):
        raise JobError(
            "this unlearning method needs a LoRA adapter on the model: its reference is the "
            "model with the adapter switched off"
        )
    was_training = model.training
    model.eval()
    try:
        with model.disable_adapter(), torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def require_retain(method: str, retain: Batch | None) -> Batch:
    if retain is None:
        raise JobError(f"unlearning method {method!r} needs retain batches; none were given")
    return retain


@dataclass
class StepMethod:
    """An unlearning method: by default one loss over a (forget, retain) pair, run by the
    shared step loop; ``run`` is the one place a method with phases differs. A subclass's
    dataclass fields are its options (pydantic validates them: unknown names are refused)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    name: ClassVar[str]
    needs_retain: ClassVar[bool] = True  # uses the retain batch of each pair

    def loss(self, model: torch.nn.Module, forget: Batch, retain: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def step_loss(self, model: torch.nn.Module, pair: Pair) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.loss(model, pair.forget, pair.retain)

    def run(self, model: torch.nn.Module, pairs: Iterable[Pair], **loop: Any) -> TrainResult:
        """Train the model's active adapter with this method (the job's single entry): the shared
        step loop over ``step_loss``, ``loop`` being ``training.loop.train``'s options. A method
        with phases overrides this."""
        from kernel_lifecycle.training.loop import train  # lazy: training loads torch; policy checks read options without it

        return train(model, pairs, loss_fn=self.step_loss, **loop)
