"""Capability localization on tiny Llamas: single-head ablation hooks, both methods on a planted
effect, the JSON, the LoRA placement a localized downskill gets, the CLI on a registered version."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kernel_lifecycle.boundary import localize as loc
from tests.tiny import tiny_llama, toy_probes, toy_tokenizer
from tests.factories import make_bundle, make_tiny_base, write_tiny_skills


class ToySkill:
    """A skill whose dev split is the toy probes (same shape as boundary.skills.Skill)."""

    scorer = "python_tests"  # how its answers are read (the toy tokenizer has no chat template: as they are)
    instruction = ""  # what a chat base would be told first (the toy base completes)

    def __init__(self, kind: str, n: int = 12) -> None:
        self.name, self._probes = kind, toy_probes(kind, n)

    def probes(self, split: str) -> list:
        return self._probes


@pytest.fixture(scope="module")
def tokenizer():  # noqa: ANN201
    return toy_tokenizer()


def _o_proj_inputs(model) -> tuple[list[torch.Tensor], list]:  # noqa: ANN001
    """Record what every o_proj receives (after any pre-hook), via forward hooks."""
    seen: list[torch.Tensor] = []
    handles = [
        a.o_proj.register_forward_hook(lambda m, args, out: seen.append(args[0].detach().clone()))
        for a in loc.attention_layers(model)
    ]
    return seen, handles


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_hook_ablates_exactly_one_head_and_is_removed(tokenizer, mode: str) -> None:  # noqa: ANN001
    model = tiny_llama(tokenizer, layers=2, hidden=32, heads=4).eval()
    layout = loc.head_layout(model)
    assert (layout.layers, layout.heads, layout.head_dim) == (2, 4, 8)
    ids = torch.tensor([tokenizer("def add(a, b):\n    return a + b\n")["input_ids"]])
    seen, handles = _o_proj_inputs(model)
    with torch.no_grad():
        clean_logits = model(input_ids=ids).logits
        clean = list(seen)
        seen.clear()
        means = torch.randn(2, 4, 8)
        with loc.head_ablation(model, layout) as state:
            keep = torch.ones(1, 2, 4)
            keep[0, 1, 2] = 0  # layer 1, head 2
            state["keep"] = keep
            if mode == "mean":
                state["means"] = means
            ablated_logits = model(input_ids=ids).logits
        ablated = list(seen)
        seen.clear()
        after_logits = model(input_ids=ids).logits
    for h in handles:
        h.remove()

    assert torch.equal(ablated[0], clean[0])  # layer 0 untouched
    before, now = clean[1].view(1, -1, 4, 8), ablated[1].view(1, -1, 4, 8)
    assert torch.equal(now[:, :, [0, 1, 3]], before[:, :, [0, 1, 3]])  # the other heads' contributions
    expected = torch.zeros_like(now[:, :, 2]) if mode == "zero" else means[1, 2].expand_as(now[:, :, 2])
    assert torch.equal(now[:, :, 2], expected) and not torch.equal(before[:, :, 2], expected)
    assert not torch.allclose(ablated_logits, clean_logits)
    # restored: no hooks left, same output as before
    assert all(not a.o_proj._forward_pre_hooks for a in loc.attention_layers(model))
    assert torch.equal(after_logits, clean_logits)


def _planted(tokenizer, heads: list[tuple[int, int]], *, scale: float = 20.0):  # noqa: ANN001, ANN202
    """A tiny Llama where ``heads`` write far more into the residual stream than the others."""
    model = tiny_llama(tokenizer, layers=2, hidden=32, heads=4, seed=3).eval()
    layers = loc.attention_layers(model)
    with torch.no_grad():
        for layer, head in heads:
            layers[layer].o_proj.weight[:, head * 8 : (head + 1) * 8] *= scale
    return model


def test_both_methods_recover_a_planted_sparse_effect(tokenizer) -> None:  # noqa: ANN001
    planted = [(0, 1), (1, 3)]
    model = _planted(tokenizer, planted)
    skill = ToySkill("python", 12)
    by_ablation = loc.map_skill(model, tokenizer, skill, method="ablation", probes=12, k=2, ablation="zero")
    by_lasso = loc.map_skill(model, tokenizer, skill, method="compressed", probes=12, k=2, ablation="zero", measurements=4)
    assert set(by_ablation.top_heads()) == set(planted)
    assert set(by_lasso.top_heads()) == set(planted)
    assert by_ablation.forward_passes == 1 + 8  # clean + every head alone
    assert by_lasso.forward_passes == 1 + 4 < by_ablation.forward_passes
    # the planted heads' effects are large next to every other head's, under both methods
    for m in (by_ablation, by_lasso):
        effects = np.asarray(m.effects)
        others = [effects[layer, head] for layer in range(2) for head in range(4) if (layer, head) not in planted]
        assert max(abs(e) for e in others) < 0.5 * min(abs(effects[h]) for h in planted)
        assert m.extra["beats_random"] and m.topk_ablation["change"] < m.random_ablation["min"]
        assert all(m.ci_low[layer][head] <= m.effects[layer][head] <= m.ci_high[layer][head] for layer, head in planted)


def test_the_compressed_default_gives_twice_as_many_equations_as_heads() -> None:
    """Each pass is one equation per probe: the default scales with heads over probes, so a
    30 x 9 model is mapped in 17 passes of 32 probes, not in half its 270 heads."""
    layout = lambda layers, heads: loc.HeadLayout(layers=layers, heads=heads, head_dim=8, kv_heads=heads)  # noqa: E731
    assert loc.default_measurements(layout(4, 4), 32) == 8  # the demo base: at least 8
    assert loc.default_measurements(layout(30, 9), 32) == 17  # SmolLM2-135M: 544 equations for 270 heads
    assert loc.default_measurements(layout(30, 9), 16) == 34


def test_json_shape_and_shared_heads(tokenizer, tmp_path: Path) -> None:  # noqa: ANN001
    model = _planted(tokenizer, [(0, 1), (1, 3)])
    maps = loc.map_skills(model, tokenizer, {"python": ToySkill("python"), "cobol": ToySkill("cobol")}, probes=6, k=2, random_seeds=3)
    data = loc.localization_json(maps, "cobol", kernel="k", version="1")
    assert {"skill", "layers", "heads", "effects", "top", "topk_ablation", "random_ablation"} <= set(data)
    assert data["skill"] == "cobol" and (data["layers"], data["heads"]) == (2, 4)
    assert np.asarray(data["effects"]).shape == (2, 4)
    assert [set(t) for t in data["top"]] == [{"layer", "head", "effect"}] * 2
    assert data["topk_ablation"]["k"] == 2 and len(data["random_ablation"]["draws"]) == 3
    assert set(data["others"]) == {"python"}
    assert data["shared"]["python"] == [list(h) for h in maps["cobol"].top_heads() if h in set(maps["python"].top_heads())]
    json.dumps(data)  # plain JSON all the way down
    files = loc.write_maps(maps, "cobol", tmp_path / "out", kernel="k")
    assert sorted(p.name for p in files) == ["cobol.json", "cobol.png", "python.png"]
    assert all(p.stat().st_size > 1000 for p in files)
    assert loc.SkillMap.from_dict(data["map"]).top_heads() == maps["cobol"].top_heads()


def test_bad_requests_are_typed_errors(tokenizer) -> None:  # noqa: ANN001
    model = tiny_llama(tokenizer, layers=1, hidden=16, heads=2)
    with pytest.raises(loc.LocalizationError, match="unknown method"):
        loc.map_skill(model, tokenizer, ToySkill("python"), method="guess")  # type: ignore[arg-type]
    with pytest.raises(loc.LocalizationError, match="k must be between 1 and the model's 2 heads"):
        loc.map_skill(model, tokenizer, ToySkill("python"), k=3, probes=4)
    with pytest.raises(loc.LocalizationError, match="at least 2"):
        loc.map_skill(model, tokenizer, ToySkill("python", 1))
    with pytest.raises(loc.LocalizationError, match="Llama-style"):
        loc.head_layout(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_lora_targets_leave_retained_heads_alone_and_the_adapter_stays_on_them(tokenizer) -> None:  # noqa: ANN001
    from kernel_lifecycle.training.data import batches, encode_probes, pad_id_of
    from kernel_lifecycle.training.lora import attach_lora
    from kernel_lifecycle.training.loop import train
    from kernel_lifecycle.training.losses import ce_loss

    model = _planted(tokenizer, [(0, 1), (1, 3), (1, 0)])
    maps = loc.map_skills(model, tokenizer, {"cobol": ToySkill("cobol"), "python": ToySkill("python")}, probes=6, k=3, random_seeds=2)
    retired, retained = maps["cobol"], maps["python"]
    placement = loc.lora_targets(model, retired, [retained], k=3)
    chosen = {(layer, h) for layer, hs in placement.heads.items() for h in hs}
    assert chosen and not chosen & set(retained.top_heads(3))
    assert {tuple(h) for h in placement.excluded_shared} <= set(retained.top_heads(3))
    assert placement.layers_to_transform == sorted(placement.heads)
    assert placement.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert json.loads(json.dumps(placement.describe()))["target"] == "localized"

    peft_model = attach_lora(model, seed=0, r=4, **placement.attach_kwargs())
    stream = batches(encode_probes(toy_probes("cobol", 8), tokenizer), batch_size=4, seed=0, pad_id=pad_id_of(tokenizer))
    train(peft_model, stream, loss_fn=ce_loss, steps=3, lr=5e-2, seed=0)
    touched = set()
    for name, module in peft_model.named_modules():
        if not hasattr(module, "lora_A") or "default" not in module.lora_A:
            continue
        layer = int(name.split(".layers.")[1].split(".")[0])
        assert layer in placement.layers_to_transform
        delta = (module.lora_B["default"].weight @ module.lora_A["default"].weight).detach()
        per_head = delta.view(4, 8, -1).abs().sum(dim=(1, 2)) if not name.endswith("o_proj") else delta.view(-1, 4, 8).abs().sum(dim=(0, 2))
        for head in range(4):
            if (layer, head) in chosen:
                touched.add((layer, head))
            else:
                assert float(per_head[head]) == 0.0, f"{name} changed head {head}"
    assert touched == chosen  # and the chosen heads did change
    # without a placement nothing changes: every layer, MLP included
    default = attach_lora(tiny_llama(tokenizer, layers=2, hidden=32, heads=4), seed=0)
    assert {n.rsplit(".", 1)[-1] for n, m in default.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_lora_targets_refuses_when_every_head_is_shared(tokenizer) -> None:  # noqa: ANN001
    model = tiny_llama(tokenizer, layers=1, hidden=16, heads=2).eval()
    m = loc.map_skill(model, tokenizer, ToySkill("cobol"), probes=4, k=2, random_seeds=1)
    with pytest.raises(loc.LocalizationError, match="use target 'all'"):
        loc.lora_targets(model, m, [m], k=2)  # the retained skill's top 2 are every head
    with pytest.raises(loc.LocalizationError, match="map the version being downskilled"):
        loc.lora_targets(_planted(tokenizer, [(0, 1)]), m, [], k=1)


def test_a_demo_sized_map_takes_under_a_minute(tokenizer) -> None:  # noqa: ANN001
    """The demo base's shape (4 layers x 4 heads, hidden 128), 32 probes: one skill's full map."""
    model = tiny_llama(tokenizer, layers=4, hidden=128, heads=4, intermediate=256, vocab_size=1024).eval()
    skill = ToySkill("cobol", 32)
    started = time.perf_counter()
    m = loc.map_skill(model, tokenizer, skill, method="ablation", probes=32, k=3)
    seconds = time.perf_counter() - started
    assert m.forward_passes == 17 and m.seconds <= seconds + 0.01
    # CPU time of all threads: on the shared 2-core machine wall time mostly measures the
    # neighbours (a minute of CPU is at most a minute of wall on an idle 2-core machine)
    assert m.extra["cpu_seconds"] < 60, f"a full map took {m.extra['cpu_seconds']:.1f}s of CPU ({seconds:.1f}s wall)"


def test_localize_cli_on_a_registered_version(kl_home: Path, monkeypatch: pytest.MonkeyPatch, cli, tmp_path: Path) -> None:  # noqa: ANN001
    from kernel_lifecycle.registry import client as registry
    from kernel_lifecycle.registry.tracking import client
    from kernel_lifecycle.settings import get_settings

    monkeypatch.setenv("KL_SKILLS_DIR", str(write_tiny_skills(tmp_path / "skills", n=4)))
    get_settings.cache_clear()
    base = make_tiny_base(tmp_path / "base", hidden=32, layers=2)
    kv = registry.register_version(make_bundle(tmp_path / "v1", kernel="loc-kernel", base_dir=base), description="v1 of loc")

    code, out, err = cli("boundary", "localize", "loc-kernel@1", "--skill", "cob", "--also", "py", "--k", "1", "--probes", "3", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["skill"] == "cob" and (data["layers"], data["heads"]) == (2, 2) and set(data["others"]) == {"py"}
    assert data["version"] == "1" and data["artifacts"] == "localize/ablation"
    logged = {a.path for a in client().list_artifacts(kv.run_id, "localize/ablation")}
    assert logged == {"localize/ablation/cob.png", "localize/ablation/py.png", "localize/ablation/cob.json"}
    page = registry.get_version("loc-kernel", "1").description
    assert page.startswith("v1 of loc") and "localize%2Fablation%2Fcob.png" in page

    # a re-run replaces the section on the page; the table names both skills
    code, out, err = cli("boundary", "localize", "loc-kernel@1", "--skill", "py", "--also", "cob", "--method", "compressed", "--probes", "3", "--k", "1")
    assert code == 0, err
    assert "where skills live in loc-kernel@1" in out and "compressed" in out
    page = registry.get_version("loc-kernel", "1").description
    assert page.count("<!-- kl:localize -->") == 1 and "localize%2Fcompressed%2Fpy.png" in page and "localize%2Fablation" not in page

    assert cli("boundary", "localize", "loc-kernel@1", "--skill", "nope")[0] == 1
    code, _, err = cli("boundary", "localize", "loc-kernel@1", "--skill", "py", "--method", "guess", "--no-log")
    assert code == 1 and "unknown method" in err
