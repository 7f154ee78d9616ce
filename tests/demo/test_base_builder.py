"""The demo base builder on a tiny config: builds, caches by content hash, deterministic, loadable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_lifecycle.demo.base_builder import BaseConfig, build_demo_base
from kernel_lifecycle.settings import get_settings

TINY = BaseConfig(vocab_size=300, hidden=32, layers=2, heads=2, intermediate=64, max_positions=256, steps=3,
                  batch_size=4)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # only the cache is used: no need for the lifecycle or MLflow databases of ``kl_home``
    monkeypatch.setenv("KL_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_build_cache_hit_deterministic_rebuild_and_load(home: Path) -> None:
    from kernel_lifecycle.models.loading import load_base

    first = build_demo_base(config=TINY, eval_limit=1)
    assert not first.cached
    assert first.path.parent == home / "cache" / "base"
    names = {p.name for p in first.path.iterdir()}
    assert {"model.safetensors", "config.json", "build.json", "tokenizer.json"} <= names
    assert [p.name for p in first.path.parent.iterdir()] == [first.path.name]  # no staging dir left
    info = json.loads((first.path / "build.json").read_text())
    assert info["steps"] == 3 and set(info["metrics"]) == {"python", "cobol", "sql"}  # steps over all LR phases
    assert info["eval"]["python"]["n"] == 1 and info["eval"]["max_new_tokens"] == 160
    assert info["metrics"] == first.metrics and all(0.0 <= v <= 1.0 for v in first.metrics.values())
    # every measured split, the held-out families' fresh among them; the base also saw their pretraining extra
    assert set(first.by_split) == {"dev", "test", "fresh", "relearn"} and first.by_split["dev"] == first.metrics
    assert all(info["eval_by_split"][split]["python"]["n"] == 1 for split in first.by_split)
    assert info["pretrain_probes"]["python"] > 600  # train split plus pretrain.jsonl

    second = build_demo_base(config=TINY, eval_limit=1)
    assert second.cached and second.path == first.path and second.sha256 == first.sha256

    rebuilt = build_demo_base(config=TINY, eval_limit=1, force=True)
    assert not rebuilt.cached and rebuilt.sha256 == first.sha256  # same seed, same weights

    model, tokenizer = load_base(str(first.path), expected_sha256=first.sha256)
    assert tokenizer.eos_token == "<eos>" and tokenizer.pad_token == "<pad>"
    assert model.config.num_hidden_layers == 2 and model.config.tie_word_embeddings
    assert tokenizer.decode(tokenizer("def add_3(x):\n")["input_ids"]) == "def add_3(x):\n"


def test_a_different_config_is_a_different_cache_entry(home: Path) -> None:
    from kernel_lifecycle.boundary.skills import DEMO_SKILLS_DIR, demo_skills
    from kernel_lifecycle.demo.base_builder import cache_key

    skills = list(demo_skills(DEMO_SKILLS_DIR).values())
    assert cache_key(TINY, skills) == cache_key(BaseConfig(**vars(TINY)), skills)
    assert cache_key(TINY, skills) != cache_key(BaseConfig(**{**vars(TINY), "steps": 4}), skills)
    assert cache_key(TINY, skills) != cache_key(BaseConfig(**{**vars(TINY), "seed": 1}), skills)


def test_other_libraries_or_cpu_kernels_are_a_different_cache_entry(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same config on another CPU or library set trains other weights: never reuse them."""
    from kernel_lifecycle.boundary.skills import DEMO_SKILLS_DIR, demo_skills
    from kernel_lifecycle.demo import base_builder as demo_base

    skills = list(demo_skills(DEMO_SKILLS_DIR).values())
    here = demo_base.build_environment()
    assert set(here) == {"torch", "transformers", "tokenizers", "cpu_capability"}
    key = demo_base.cache_key(TINY, skills)
    for name in here:
        monkeypatch.setattr(demo_base, "build_environment", lambda name=name: {**here, name: "other"})
        assert demo_base.cache_key(TINY, skills) != key, name


def test_the_shipped_base_is_what_the_defaults_give_and_its_bytes_are_verified(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every machine starts the demo from the same bytes: the defaults return the shipped base
    (nothing built, nothing cached), its weights checked against the sha256 in the code."""
    import shutil

    from kernel_lifecycle.demo import base_builder
    from kernel_lifecycle.errors import JobError
    from kernel_lifecycle.models.loading import base_sha256

    base = build_demo_base()
    assert base.path == base_builder.SHIPPED_DIR and base.cached
    assert base.sha256 == base_builder.SHIPPED_SHA256 == base_sha256(base.path)
    assert not (home / "cache" / "base").exists()  # nothing built
    assert set(base.metrics) == {"python", "cobol", "sql"}

    damaged = tmp_path / "damaged"
    shutil.copytree(base_builder.SHIPPED_DIR, damaged)
    weights = damaged / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(base_builder, "SHIPPED_DIR", damaged)
    with pytest.raises(JobError, match="shipped demo base .* is damaged"):
        build_demo_base()
    # regenerated skills (other train data) mean the shipped base is not theirs: it is not used
    info = json.loads((damaged / "build.json").read_text())
    info["data_digests"]["python"] = "0" * 64
    (damaged / "build.json").write_text(json.dumps(info))
    assert base_builder.shipped_base(base_builder._skills(None)) is None


def test_the_retrain_reference_is_the_same_recipe_without_the_skill_on_the_bases_tokenizer(home: Path) -> None:
    from kernel_lifecycle.boundary.reference import find_retrain
    from kernel_lifecycle.errors import JobError

    origin = build_demo_base(config=TINY, eval_limit=1)
    ref = build_demo_base(config=TINY, eval_limit=1, without="cobol")
    assert not ref.cached and ref.path != origin.path and ref.path.parent == origin.path.parent
    info = json.loads((ref.path / "build.json").read_text())
    assert info["without"] == "cobol" and info["origin_sha256"] == origin.sha256
    assert set(info["pretrain_probes"]) == {"python", "sql"}  # never shown cobol ...
    assert set(info["metrics"]) == {"python", "cobol", "sql"}  # ... and measured on it
    for name in ("tokenizer.json", "tokenizer_config.json"):  # the same token ids as the kernels it is compared with
        assert (ref.path / name).read_bytes() == (origin.path / name).read_bytes()
    assert find_retrain(origin.sha256, "cobol") == (ref.path, ref.sha256)  # recorded in the reference index
    again = build_demo_base(config=TINY, eval_limit=1, without="cobol")
    assert again.cached and again.sha256 == ref.sha256
    with pytest.raises(JobError, match="cannot build the demo base without 'klingon': not a demo skill"):
        build_demo_base(config=TINY, eval_limit=1, without="klingon")


def test_the_shipped_reference_without_cobol_is_verified(home: Path) -> None:
    from kernel_lifecycle.boundary.reference import find_retrain
    from kernel_lifecycle.resources import DEMO_BASE_SHA256, DEMO_REFERENCE_SHA256, demo_reference_dir

    shipped = build_demo_base(without="cobol")
    assert shipped.cached and shipped.path == demo_reference_dir("cobol") and shipped.sha256 == DEMO_REFERENCE_SHA256["cobol"]
    assert shipped.metrics["cobol"] == 0.0 and shipped.by_split["test"]["cobol"] == 0.0
    assert find_retrain(DEMO_BASE_SHA256, "cobol") == (shipped.path, shipped.sha256)  # found without any build here
    assert not (home / "cache" / "base").exists()
