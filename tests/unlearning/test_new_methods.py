"""SimNPO, RMU and UNDO: each loss against a value computed by hand on the tiny world, and each
method run a few steps on it."""

from __future__ import annotations

import math

import pytest
import torch

from kernel_lifecycle.errors import JobError
from kernel_lifecycle.training.data import collate
from kernel_lifecycle.training.lora import attach_lora
from kernel_lifecycle.unlearning import get_method
from kernel_lifecycle.unlearning.undo import distill_loss, perturb_adapter


def _solution_token_logprobs(model, batch) -> list[list[float]]:
    """log p of each solution token, per sequence, read off the logits one position at a time."""
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float(), dim=-1)
    rows = []
    for i in range(len(batch)):
        labels = batch.labels[i].tolist()
        rows.append([logp[i, t - 1, labels[t]].item() for t in range(1, len(labels)) if labels[t] != -100])
    return rows


def _logsigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_simnpo_loss_is_the_length_normalised_formula(world):
    model = attach_lora(world.fresh_base(), seed=0)
    pair = next(world.pairs())
    beta, margin, weight = 2.0, 0.5, 3.0
    loss, stats = get_method("simnpo", beta=beta, margin=margin, retain_weight=weight).loss(model, pair.forget, pair.retain)

    per_seq = _solution_token_logprobs(model, pair.forget)
    expected_forget = sum(-(2 / beta) * _logsigmoid(beta * (-sum(lp) / len(lp)) - margin) for lp in per_seq) / len(per_seq)
    retain_tokens = [x for row in _solution_token_logprobs(model, pair.retain) for x in row]
    expected_retain = -sum(retain_tokens) / len(retain_tokens)
    assert stats["forget_loss"].item() == pytest.approx(expected_forget, rel=1e-5)
    assert stats["retain_nll"].item() == pytest.approx(expected_retain, rel=1e-5)
    assert loss.item() == pytest.approx(expected_forget + weight * expected_retain, rel=1e-5)
    # no reference: the loss is the same with or without an adapter (NPO would refuse the plain model)
    plain, _ = get_method("simnpo", beta=beta, margin=margin, retain_weight=weight).loss(world.fresh_base(), pair.forget, pair.retain)
    assert plain.item() == pytest.approx(loss.item(), rel=1e-5)


def test_rmu_loss_at_a_fresh_adapter_is_the_distance_to_the_steering_vector(world):
    # A fresh adapter is the identity: the retain term is exactly 0 and the forget term is the
    # mean over solution tokens of |h - c u|^2 / width, h read here from output_hidden_states.
    model = attach_lora(world.fresh_base(), seed=0)
    pair = next(world.pairs())
    layer, scale = 0, 3.0
    loss, stats = get_method("rmu", layer=layer, steering_scale=scale, retain_weight=7.0, vector_seed=5).loss(model, pair.forget, pair.retain)

    with torch.no_grad():
        hidden = world.base(input_ids=pair.forget.input_ids, attention_mask=pair.forget.attention_mask, output_hidden_states=True).hidden_states[layer + 1]
    tokens = [hidden[i, t] for i in range(len(pair.forget)) for t in range(hidden.shape[1]) if pair.forget.labels[i, t] != -100]
    width = hidden.shape[-1]
    u = torch.rand(width, generator=torch.Generator().manual_seed(5))
    u = u / u.norm()
    c = scale * sum(h.norm().item() for h in tokens) / len(tokens)
    expected = sum((h.norm().item() ** 2 - 2 * c * torch.dot(h, u).item() + c * c) / width for h in tokens) / len(tokens)
    assert stats["retain_mse"].item() == pytest.approx(0.0, abs=1e-10)
    assert stats["steering_norm"].item() == pytest.approx(c, rel=1e-5)
    assert stats["forget_mse"].item() == pytest.approx(expected, rel=1e-4)
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_rmu_refuses_a_layer_the_model_does_not_have(world):
    model = attach_lora(world.fresh_base(), seed=0)
    pair = next(world.pairs())
    with pytest.raises(JobError, match="rmu layer 5 does not exist: the model has 2 decoder layers"):
        get_method("rmu", layer=5).loss(model, pair.forget, pair.retain)


def test_distill_loss_is_the_teachers_kl_on_solution_tokens(world):
    batch = collate(world.retain[:3], world.pad)
    teacher, student = world.fresh_base(), attach_lora(world.fresh_base(), seed=0)
    perturb_adapter(student, relative=0.5, seed=0)
    kl, stats = distill_loss(student, teacher, batch)
    with torch.no_grad():
        p = torch.softmax(teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.double(), -1)
        q = torch.softmax(student(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.double(), -1)
    terms = [
        sum(p[i, t - 1, v].item() * math.log(p[i, t - 1, v].item() / q[i, t - 1, v].item()) for v in range(p.shape[-1]))
        for i in range(len(batch)) for t in range(1, batch.labels.shape[1]) if batch.labels[i, t] != -100
    ]
    assert kl.item() == pytest.approx(sum(terms) / len(terms), rel=1e-4)
    assert kl.item() > 1e-3  # the perturbation changed the student
    same, _ = distill_loss(teacher, teacher, batch)
    assert same.item() == pytest.approx(0.0, abs=1e-6)


def test_perturbation_moves_every_projection_by_the_asked_share_of_its_norm(world):
    model = attach_lora(world.fresh_base(), r=8, seed=0)
    get_method("npo").run(model, world.pairs(), steps=2, lr=1e-2, seed=0)  # a trained adapter: A and B both non-zero
    lora = [m for m in model.modules() if getattr(m, "lora_A", None) is not None and "default" in m.lora_A]
    before = [m.get_delta_weight("default").detach().clone() for m in lora]
    assert perturb_adapter(model, relative=0.0, seed=0) == 0
    assert perturb_adapter(model, relative=0.2, seed=0) == len(lora) == 14  # 7 projections x 2 layers
    for module, delta in zip(lora, before):
        moved = (module.get_delta_weight("default") - delta).norm() / module.get_base_layer().weight.norm()
        assert moved.item() == pytest.approx(0.2, rel=1e-4)


@pytest.mark.parametrize("name,options", [("simnpo", {}), ("rmu", {"layer": 0}), ("undo", {"distill_steps": 4})])
def test_each_new_method_unlearns_the_forget_skill(world, name, options):
    from kernel_lifecycle.training.losses import nll

    model = attach_lora(world.fresh_base(), seed=0)
    checkpoints: list[int] = []
    result = get_method(name, **options).run(model, world.pairs(), steps=8, lr=1e-2, seed=0, checkpoint_every=4,
                                             on_checkpoint=lambda step, m: checkpoints.append(step))
    assert all(math.isfinite(x) for x in result.losses)
    forget = collate(world.forget, world.pad)
    model.eval()
    with torch.no_grad():
        before, after = nll(world.base, forget).item(), nll(model, forget).item()
    assert after > before + 0.5, (before, after)
    # undo: only the distilled student's steps are checkpoints, numbered after the teacher's
    assert checkpoints == ([8 + 4] if name == "undo" else [4, 8])
