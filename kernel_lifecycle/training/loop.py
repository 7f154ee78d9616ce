"""The one training step loop every job uses (distill, upskill, downskill, negation).

It reads top to bottom like nanoGPT's: draw a batch, compute the job's loss, step AdamW over
the trainable (LoRA) parameters, and every ``checkpoint_every`` steps hand the model to the job,
which evaluates the boundary there and may save the adapter. What differs between jobs is only
the ``loss_fn``; everything about stepping lives here once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from kernel_lifecycle.errors import JobError

if TYPE_CHECKING:
    from kernel_lifecycle.display import ProgressLike
    from kernel_lifecycle.training.data import Batch, Pair

# loss_fn(model, batch) -> loss, or (loss, stats) with stats a dict of scalar tensors/floats;
# the batch is a Batch or a Pair, whichever the stream yields (Any: a loss of Batch alone fits)
LossFn = Callable[[torch.nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, dict[str, Any]]"]


@dataclass
class TrainResult:
    steps: int
    tokens: int  # non-padding input tokens seen (forget + retain for unlearning pairs)
    seconds: float  # time in the step loop, checkpoint callbacks excluded
    losses: list[float] = field(default_factory=list)  # one per step

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def train(
    model: torch.nn.Module,
    batches: Iterable[Batch | Pair],
    *,
    loss_fn: LossFn,
    steps: int,
    lr: float,
    weight_decay: float = 0.0,
    grad_clip: float | None = 1.0,
    seed: int,
    on_step: Callable[[int, float, dict[str, float]], None] | None = None,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[int, torch.nn.Module], None] | None = None,
    progress: ProgressLike | None = None,
) -> TrainResult:
    """Run ``steps`` optimizer steps; call ``on_checkpoint(step, model)`` every N steps.

    Checkpoints fall on multiples of ``checkpoint_every`` and on the last step, so the final
    model is always among the candidates a job can choose from. ``progress`` is a rich
    ``Progress`` (any ``display.ProgressLike``); a task is added to it. Batches need a ``tokens`` attribute (``Batch``/``Pair``).
    """
    if steps < 1:
        raise JobError(f"steps must be at least 1, got {steps}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise JobError(f"checkpoint_every must be at least 1, got {checkpoint_every}")

    # Seed before anything random happens in the loop (dropout, sampling in a callback).
    torch.manual_seed(seed)

    # Only the adapter trains: the base stays frozen, so AdamW keeps state for LoRA weights only.
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise JobError("the model has no trainable parameters; attach a LoRA adapter first")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    task = progress.add_task("training", total=steps) if progress is not None else None
    batch_iter = iter(batches)
    losses: list[torch.Tensor] = []  # detached; turned into floats at checkpoints, not per step
    tokens = 0
    seconds = 0.0
    model.train()
    started = time.perf_counter()

    for step in range(1, steps + 1):
        try:
            batch = next(batch_iter)
        except StopIteration:
            raise JobError(f"the batch stream ran out at step {step} of {steps}") from None

        out = loss_fn(model, batch)
        loss, stats = out if isinstance(out, tuple) else (out, {})

        loss.backward()
        # Clipping keeps one bad batch (or gradient ascent's unbounded objective) from
        # throwing the adapter far away in a single step.
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        # set_to_none frees gradient memory between steps and skips a memset.
        optimizer.zero_grad(set_to_none=True)

        losses.append(loss.detach())
        tokens += batch.tokens

        if on_step is not None:
            on_step(step, float(losses[-1]), {k: float(v) for k, v in stats.items()})
        if task is not None:
            progress.update(task, advance=1)

        at_checkpoint = checkpoint_every is not None and (
            step % checkpoint_every == 0 or step == steps
        )
        if at_checkpoint:
            seconds += time.perf_counter() - started
            _check_finite(losses, step)
            if on_checkpoint is not None:
                # The callback evaluates (eval mode, no grad); training resumes afterwards.
                on_checkpoint(step, model)
                model.train()
            started = time.perf_counter()

    seconds += time.perf_counter() - started
    values = _check_finite(losses, steps)
    return TrainResult(steps=steps, tokens=tokens, seconds=seconds, losses=values)


def _check_finite(losses: list[torch.Tensor], step: int) -> list[float]:
    values = torch.stack(losses).tolist() if losses else []
    for i, value in enumerate(values, start=1):
        if not math.isfinite(value):
            raise JobError(
                f"the loss became {value} at step {i} (checked at step {step}); "
                "lower the learning rate or the number of steps"
            )
    return values
