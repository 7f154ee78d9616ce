"""UNDO, distill after unlearning (Lee et al. 2025, "Distillation Robustifies Unlearning").

Unlearning that only suppresses a skill leaves it in the weights, where a few steps of
relearning find it again. UNDO's recipe: unlearn (the teacher), perturb a copy of the unlearned
model's weights with noise that damages what they hold, then distill the teacher's outputs on
retained data into that copy. The student relearns only what the teacher shows it, and the teacher
shows nothing of the retired skill.

Here, inside one LoRA adapter:
1. ``steps`` steps of NPO (``beta``, ``retain_weight``), the plan's budget: the teacher;
2. the adapter is perturbed: Gaussian noise is added to its A and B matrices, sized so that
   each projection's weight moves by ``perturb`` times its base weight's Frobenius norm
   (``perturb_adapter``);
3. ``distill_steps`` more steps minimise KL(teacher || student) on the retained skills' solution
   tokens (``distill_loss``), the teacher being a frozen copy of the model after step 1.

Only phase 3's steps are checkpoints (the job chooses its boundary among them): a phase-1 model
is the teacher, not an UNDO result. The perturbation is rank-limited (it lives in the adapter):
a weaker damage than the paper's full-weight noise, which a bundle of adapters cannot carry.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field

from kernel_lifecycle.errors import JobError
from kernel_lifecycle.unlearning.base import StepMethod
from kernel_lifecycle.unlearning.npo import NPO

if TYPE_CHECKING:
    import torch

    from kernel_lifecycle.training.data import Batch, Pair
    from kernel_lifecycle.training.loop import TrainResult


@dataclass
class Undo(StepMethod):
    name: ClassVar[str] = "undo"

    beta: Annotated[float, Field(gt=0.0)] = 0.1  # phase 1 (NPO)
    retain_weight: Annotated[float, Field(ge=0.0)] = 1.0  # phase 1 (NPO)
    perturb: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    distill_steps: Annotated[int, Field(gt=0)] = 30

    def run(self, model: torch.nn.Module, pairs: Iterable[Pair], **loop: Any) -> TrainResult:
        from kernel_lifecycle.training.loop import TrainResult, train  # lazy: training loads torch; policy checks read options without it

        on_checkpoint = loop.pop("on_checkpoint", None)
        checkpoint_every = loop.pop("checkpoint_every", None)
        on_step = loop.pop("on_step", None)
        steps = loop.pop("steps")
        stream = iter(pairs)
        teach = train(model, stream, loss_fn=NPO(beta=self.beta, retain_weight=self.retain_weight).step_loss, steps=steps, on_step=on_step, **loop)

        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        perturb_adapter(model, relative=self.perturb, seed=loop["seed"])
        student = train(
            model, (pair.retain for pair in stream if pair.retain is not None),
            loss_fn=lambda m, batch: distill_loss(m, teacher, batch), steps=self.distill_steps,
            checkpoint_every=checkpoint_every or self.distill_steps, on_checkpoint=_after(steps, on_checkpoint),
            on_step=_after(steps, on_step), **loop,
        )
        return TrainResult(
            steps=steps + self.distill_steps, tokens=teach.tokens + student.tokens,
            seconds=teach.seconds + student.seconds, losses=teach.losses + student.losses,
        )


def _after(offset: int, callback: Callable[..., None] | None) -> Callable[..., None] | None:
    """``callback`` with its step shifted past phase 1, so logged steps run on."""
    if callback is None:
        return None
    return lambda step, *rest: callback(offset + step, *rest)


def distill_loss(student: torch.nn.Module, teacher: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """KL(teacher || student) of the next-token distributions, averaged over the batch's
    solution tokens (the positions whose next token the labels mark)."""
    import torch
    import torch.nn.functional as F

    from kernel_lifecycle.training.data import IGNORE_INDEX  # lazy: training loads torch; policy checks read options without it
    from kernel_lifecycle.training.losses import next_token_targets  # lazy: as above

    with torch.no_grad():
        teacher_logp = F.log_softmax(teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float(), dim=-1)
    student_logp = F.log_softmax(student(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float(), dim=-1)
    per_token = (teacher_logp.exp() * (teacher_logp - student_logp)).sum(dim=-1)
    mask = (next_token_targets(batch.labels) != IGNORE_INDEX).to(per_token.dtype)
    kl = (per_token * mask).sum() / mask.sum().clamp(min=1)
    return kl, {"distill_kl": kl.detach()}


def perturb_adapter(model: torch.nn.Module, *, relative: float, seed: int) -> int:
    """Add seeded Gaussian noise to the active LoRA adapter's A and B in every targeted module;
    returns how many modules. The noise is scaled so that each projection's weight moves by
    exactly ``relative`` times its base weight's Frobenius norm: with A, B the adapter and
    N_A, N_B standard normal draws, s(B + t N_B)(A + t N_A) - sBA = tX + t^2 Y, and t solves
    ||tX + t^2 Y||_F = relative ||W_base||_F (by bisection: the norm grows with t)."""
    import torch

    from kernel_lifecycle.training.lora import active_adapter  # lazy: training loads torch; policy checks read options without it

    if relative == 0:
        return 0
    name = active_adapter(model)
    generator = torch.Generator().manual_seed(seed)
    changed = 0
    for module in model.modules():
        lora_a, lora_b = getattr(module, "lora_A", None), getattr(module, "lora_B", None)
        if lora_a is None or name not in lora_a:
            continue
        a, b = lora_a[name].weight, lora_b[name].weight  # (r, in), (out, r)
        noise_a = torch.randn(a.shape, generator=generator, dtype=torch.float64)
        noise_b = torch.randn(b.shape, generator=generator, dtype=torch.float64)
        a64, b64, s = a.detach().double(), b.detach().double(), module.scaling[name]
        x, y = s * (noise_b @ a64 + b64 @ noise_a), s * (noise_b @ noise_a)
        goal = relative * module.get_base_layer().weight.detach().double().norm().item()
        t = _solve_increasing(lambda t: (t * x + t * t * y).norm().item(), goal)
        with torch.no_grad():
            a.add_((t * noise_a).to(a))
            b.add_((t * noise_b).to(b))
        changed += 1
    if not changed:
        raise JobError("undo needs a LoRA adapter on the model to perturb (attach_lora)")
    return changed


def _solve_increasing(f: Callable[[float], float], goal: float) -> float:
    """t >= 0 with f(t) = goal, for f increasing from f(0) = 0."""
    high = 1.0
    while f(high) < goal:
        high *= 2
    low = 0.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if f(mid) < goal else (low, mid)
    return (low + high) / 2
