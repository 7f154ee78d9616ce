"""Bundles: hashes verified, pickles refused, manifests validated with a field-naming error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from peft import PeftModel
from transformers import LlamaForCausalLM

from kernel_lifecycle.errors import BundleError
from kernel_lifecycle.registry.bundle import verify_bundle
from tests.factories import make_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), n_adapters=2)


def test_bundle_round_trip_and_plain_peft_loads_it(bundle: Path) -> None:
    manifest = verify_bundle(bundle)
    assert [a.name for a in manifest.adapters] == ["adapter0", "adapter1"]
    base = LlamaForCausalLM.from_pretrained(manifest.base.uri, use_safetensors=True)
    model = PeftModel.from_pretrained(base, bundle / "adapters" / "adapter0")  # no project code
    assert model.active_adapter == "default"


def _copy(bundle: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "b"
    shutil.copytree(bundle, target)
    return target


def test_tampered_adapter_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = _copy(bundle, tmp_path)
    weights = copy / "adapters" / "adapter1" / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="adapter1.*does not match the manifest"):
        verify_bundle(copy)


def test_pickle_adapter_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = _copy(bundle, tmp_path)
    (copy / "adapters" / "adapter0" / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(BundleError, match="pickle-based weights are refused"):
        verify_bundle(copy)


def test_manifest_missing_field_is_named(bundle: Path, tmp_path: Path) -> None:
    copy = _copy(bundle, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["base"]["sha256"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="missing field at 'base.sha256'"):
        verify_bundle(copy)
