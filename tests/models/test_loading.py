"""Loading: safetensors only, hashes verified, adapters for another base refused; generation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kernel_lifecycle.boundary.generation import generate
from kernel_lifecycle.errors import BundleError
from kernel_lifecycle.models.loading import base_sha256, load_base, load_kernel
from tests.tiny import tiny_llama, toy_tokenizer
from tests.factories import make_bundle, make_lora_adapter, make_tiny_base


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "base"
    tokenizer = toy_tokenizer()
    model = tiny_llama(tokenizer, layers=1, hidden=32, seed=3)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def test_load_base_and_generate_is_deterministic(tiny_base: Path) -> None:
    model, tokenizer = load_base(str(tiny_base))
    prompts = ['def add_1(a, b):\n    """Return a + b."""\n', "x", "       PROCEDURE DIVISION.\n"]
    greedy = generate(model, tokenizer, prompts, max_new_tokens=12, batch_size=2)
    assert [len(g) for g in greedy] == [1, 1, 1]
    assert greedy == generate(model, tokenizer, prompts, max_new_tokens=12, batch_size=2)
    # a random model rarely says eos: hitting the budget is flagged, not hidden
    assert all(g[0].truncated == (g[0].n_tokens == 12) for g in greedy)
    assert all(g[0].mean_entropy > 0 for g in greedy)
    sampled = generate(model, tokenizer, prompts, max_new_tokens=8, n_samples=3, temperature=1.0, seed=5)
    assert [len(g) for g in sampled] == [3, 3, 3]
    assert sampled == generate(model, tokenizer, prompts, max_new_tokens=8, n_samples=3, temperature=1.0, seed=5)


def test_pickle_only_base_is_refused(tiny_base: Path, tmp_path: Path) -> None:
    copy = tmp_path / "pickled"
    shutil.copytree(tiny_base, copy)
    (copy / "model.safetensors").unlink()
    (copy / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(BundleError, match="only pickle-based weights"):
        load_base(str(copy))


def test_missing_base_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not found: no such directory"):
        load_base(str(tmp_path / "nowhere"))


def test_kernel_hash_and_shape_checks(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "k", n_adapters=2)
    loaded = load_kernel(bundle)
    assert loaded.manifest.kernel == "demo-kernel"
    assert not hasattr(loaded.model, "peft_config")  # adapters merged: a plain model

    # the base changed under the manifest: refused
    base = Path(loaded.manifest.base.uri)
    other = make_tiny_base(tmp_path / "other", seed=9)
    shutil.copy(other / "model.safetensors", base / "model.safetensors")
    assert base_sha256(base) != loaded.manifest.base.sha256
    with pytest.raises(BundleError, match="does not match the manifest"):
        load_kernel(bundle)


def test_adapter_for_another_base_is_refused(tmp_path: Path) -> None:
    from kernel_lifecycle.models.loading import apply_adapter
    from transformers import LlamaForCausalLM

    small = make_tiny_base(tmp_path / "small", hidden=16)
    wide = make_tiny_base(tmp_path / "wide", hidden=32)
    adapter = make_lora_adapter(wide, tmp_path / "adapter")
    model = LlamaForCausalLM.from_pretrained(small, use_safetensors=True)
    with pytest.raises(BundleError, match="adapter 'wide-one' does not fit this base model"):
        apply_adapter(model, adapter, name="wide-one")


def test_pad_token_falls_back_to_eos_and_neither_is_refused(tmp_path: Path) -> None:
    tokenizer = toy_tokenizer()
    model = tiny_llama(tokenizer, layers=1, hidden=32, seed=3)
    no_pad = tmp_path / "no-pad"
    model.save_pretrained(no_pad, safe_serialization=True)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(no_pad)
    _, loaded = load_base(str(no_pad))
    assert loaded.pad_token == loaded.eos_token == "<eos>"

    neither = tmp_path / "neither"
    model.save_pretrained(neither, safe_serialization=True)
    tokenizer.eos_token = None
    tokenizer.save_pretrained(neither)
    with pytest.raises(BundleError, match="its tokenizer has neither a pad token nor an eos token"):
        load_base(str(neither))


def test_manifests_before_base_specs_still_load(tmp_path: Path) -> None:
    """A manifest written before base.kind/source/source_sha256 existed reads and loads; an
    unknown field is still refused."""
    import json

    from kernel_lifecycle.registry.bundle import read_manifest

    bundle = make_bundle(tmp_path / "k", n_adapters=1)
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    data["base"] = {k: data["base"][k] for k in ("uri", "sha256", "tokenizer_uri")}  # the old shape
    path.write_text(json.dumps(data))
    loaded = load_kernel(bundle)
    assert loaded.manifest.base.kind is None and loaded.manifest.base.source_sha256 is None
    data["base"]["weights_dtype"] = "fp32"
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="Extra inputs are not permitted at 'base.weights_dtype'"):
        read_manifest(bundle)
