from __future__ import annotations

import copy

import pytest
import torch
from peft import PeftModel

from kernel_lifecycle.errors import JobError
from kernel_lifecycle.training.data import batches
from kernel_lifecycle.training.lora import active_adapter, attach_lora, save_adapter
from kernel_lifecycle.training.loop import train
from kernel_lifecycle.training.losses import ce_loss
from kernel_lifecycle.unlearning import get_method
from kernel_lifecycle.unlearning.negation import negate_adapter

STEPS, LR = 6, 1e-2


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_negation_applies_minus_the_trained_delta(world):
    w0 = _weights(world.base)

    # The skill vector, trained on its own with the same seed and data as negation's phase 1.
    skill = attach_lora(world.fresh_base(), adapter_name="down", seed=0)
    forget_stream = batches(world.forget, batch_size=4, seed=0, pad_id=world.pad)
    train(skill, forget_stream, loss_fn=ce_loss, steps=STEPS, lr=LR, seed=0)
    w_skill = _weights(skill.merge_and_unload())

    negated = attach_lora(world.fresh_base(), adapter_name="down", seed=0)
    checkpoints: list[int] = []
    get_method("negation").run(
        negated, world.pairs(), steps=STEPS, lr=LR, seed=0,
        checkpoint_every=2, on_checkpoint=lambda step, m: checkpoints.append(step),
    )
    assert checkpoints == [STEPS]  # one checkpoint, after negation
    assert active_adapter(negated) == "down_negated"
    assert list(negated.peft_config) == ["down_negated"]
    w_neg = _weights(negated.merge_and_unload())

    changed = 0
    for key, base in w0.items():
        delta = w_skill[key] - base
        torch.testing.assert_close(w_neg[key] - base, -delta, rtol=1e-4, atol=1e-6)
        changed += int(delta.abs().max() > 1e-4)
    assert changed >= 14  # 7 targeted projections in each of the 2 layers moved


def test_negation_weight_scales_the_delta(world):
    model = attach_lora(world.fresh_base(), adapter_name="down", seed=0)
    train(model, batches(world.forget, batch_size=4, seed=0, pad_id=world.pad),
          loss_fn=ce_loss, steps=3, lr=LR, seed=0)
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    delta = layer.get_delta_weight("down")
    name = negate_adapter(model, "down", weight=0.5)
    torch.testing.assert_close(layer.get_delta_weight(name), -0.5 * delta, rtol=1e-4, atol=1e-7)
    with pytest.raises(JobError, match="must be positive"):
        negate_adapter(model, "down", weight=-1.0)


def test_negated_adapter_saves_and_loads_with_plain_peft(world, tmp_path):
    model = attach_lora(world.fresh_base(), adapter_name="down", seed=0)
    get_method("negation", negation_weight=1.0).run(model, world.pairs(), steps=3, lr=LR, seed=0)
    saved = save_adapter(model, tmp_path / "down")
    assert sorted(p.name for p in saved.path.iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors"
    ]
    loaded = PeftModel.from_pretrained(copy.deepcopy(world.base), saved.path)
    ids = torch.tensor([world.forget[0].input_ids])
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits)


def test_negation_lowers_the_likelihood_of_the_skills_canonical_solutions(world):
    """The property peft must get right (peft 0.18.0 turned -1 into +1 for a single adapter,
    peft#3004; older releases refused negative weights): after negation the retired skill's
    canonical solutions are *less* likely than before the downskill, not more."""
    from kernel_lifecycle.training.losses import sequence_logprob

    forget = next(iter(batches(world.forget, batch_size=len(world.forget), seed=0, pad_id=world.pad)))
    with torch.no_grad():
        before = sequence_logprob(world.base, forget).mean().item()
    model = attach_lora(world.fresh_base(), adapter_name="down", seed=0)
    get_method("negation").run(model, world.pairs(), steps=STEPS, lr=LR, seed=0)
    model.eval()
    with torch.no_grad():
        after = sequence_logprob(model, forget).mean().item()
    assert after < before - 0.1, (before, after)  # measured: -9.77 -> -10.36 nats per sequence
