from __future__ import annotations

import math

import pytest
import torch

from kernel_lifecycle.errors import JobError
from kernel_lifecycle.training.data import collate
from kernel_lifecycle.training.lora import attach_lora
from kernel_lifecycle.training.losses import nll, sequence_logprob
from kernel_lifecycle.unlearning import METHODS, get_method
from kernel_lifecycle.unlearning.base import reference_model

STEP_METHODS = [m for m in METHODS if m not in ("negation", "undo")]  # those two run phases, not one step loss


def _measure(model, world) -> dict[str, float]:
    forget, retain = collate(world.forget, world.pad), collate(world.retain, world.pad)
    model.eval()
    with torch.no_grad():
        out = {
            "forget_logp": sequence_logprob(model, forget).mean().item(),
            "retain_nll": nll(model, retain).item(),
        }
        with reference_model(model):
            out["ref_forget_logp"] = sequence_logprob(model, forget).mean().item()
            out["ref_retain_nll"] = nll(model, retain).item()
    return out


def _unlearn(world, name: str, steps: int = 8, lr: float = 1e-2, **options) -> dict[str, float]:
    model = attach_lora(world.fresh_base(), seed=0)
    result = get_method(name, **options).run(model, world.pairs(), steps=steps, lr=lr, seed=0)
    assert len(result.losses) == steps and all(math.isfinite(x) for x in result.losses)
    return _measure(model, world)


@pytest.mark.parametrize("name", STEP_METHODS)
def test_each_loss_is_finite_and_has_gradients(world, name):
    model = attach_lora(world.fresh_base(), seed=0)
    pair = next(world.pairs())
    loss, stats = get_method(name).loss(model, pair.forget, pair.retain)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in stats.values())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_npo_starts_at_its_closed_form(world):
    # A fresh LoRA adapter is the identity (B = 0), so log p_theta = log p_ref and the forget
    # loss is -(2/beta) * logsigmoid(0) = (2/beta) * log 2 exactly.
    model = attach_lora(world.fresh_base(), seed=0)
    pair = next(world.pairs())
    npo = get_method("npo", beta=0.5, retain_weight=3.0)
    loss, stats = npo.loss(model, pair.forget, pair.retain)
    assert stats["forget_loss"].item() == pytest.approx(4 * math.log(2), rel=1e-5)
    assert stats["forget_log_ratio"].item() == pytest.approx(0.0, abs=1e-4)
    assert loss.item() == pytest.approx(4 * math.log(2) + 3.0 * stats["retain_nll"].item(), rel=1e-5)


def test_npo_and_grad_diff_unlearn_while_grad_diff_keeps_retain_better_than_ascent(world):
    npo = _unlearn(world, "npo")
    diff = _unlearn(world, "grad_diff")
    ascent = _unlearn(world, "grad_ascent")
    for out in (npo, diff):
        # the forget solutions became far less likely than under the reference (adapter off)
        assert out["forget_logp"] < out["ref_forget_logp"] - 20, out
    assert diff["retain_nll"] < ascent["retain_nll"] - 1.0, (diff, ascent)
    # NPO saturates and has a retain term: the kept skill stays close to the reference
    assert npo["retain_nll"] < npo["ref_retain_nll"] + 0.5, npo


def test_retain_methods_refuse_missing_retain_batches(world):
    model = attach_lora(world.fresh_base(), seed=0)
    forget = next(world.pairs()).forget
    with pytest.raises(JobError, match="needs retain batches"):
        get_method("grad_diff").loss(model, forget, None)
    loss, _ = get_method("grad_ascent").loss(model, forget, None)
    assert torch.isfinite(loss)


def test_npo_needs_an_adapter_for_its_reference(world):
    pair = next(world.pairs())
    with pytest.raises(JobError, match="needs a LoRA adapter"):
        get_method("npo").loss(world.fresh_base(), pair.forget, pair.retain)


def test_reference_restores_the_training_mode(world):
    model = attach_lora(world.fresh_base(), seed=0)
    model.train()
    with reference_model(model) as ref:
        assert not ref.training
    assert model.training
