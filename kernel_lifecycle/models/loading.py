"""Loading base models and kernels: transformers + peft + safetensors only, hashes verified.

A base is a local directory, an MLflow artifact URI (``runs:/...``, ``mlflow-artifacts:/...``,
downloaded once into ``KL_HOME/cache``) or a hub id (fetched by ``huggingface_hub`` where a
network exists; tests never do). Weights must be safetensors; ``trust_remote_code`` is never on.
A kernel is its base with its adapters applied in order, each merged into the weights, so what
comes back is a plain transformers model.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kernel_lifecycle.errors import BundleError
from kernel_lifecycle.hashing import sha256_tree
from kernel_lifecycle.registry.bundle import FORBIDDEN_SUFFIXES, Manifest, verify_bundle
from kernel_lifecycle.settings import get_settings

ARTIFACT_SCHEMES = ("runs:/", "mlflow-artifacts:/", "models:/")


@dataclass
class LoadedKernel:
    model: object  # transformers PreTrainedModel, adapters merged
    tokenizer: object
    manifest: Manifest


def device_for(device: str | None = None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def base_sha256(path: Path) -> str:
    """The sha256 a manifest records for a base: over its *.safetensors files (names + contents)."""
    return sha256_tree(Path(path), "*.safetensors")


def _quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:  # transformers writes shards through huggingface_hub's own bars
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass


def resolve_base_dir(uri: str) -> Path:
    """A local directory holding the base model's files, downloading it once if needed."""
    path = Path(uri).expanduser()
    if path.is_dir():
        return path
    cache = get_settings().cache_dir / "bases" / hashlib.sha256(uri.encode()).hexdigest()[:24]
    if cache.is_dir():
        return cache
    if uri.startswith(ARTIFACT_SCHEMES):
        import mlflow.artifacts

        cache.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache.parent, prefix=".dl-"))
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(staging), tracking_uri=get_settings().tracking_uri
            )
            Path(local).rename(cache)
        except Exception as exc:  # noqa: BLE001
            raise BundleError(f"cannot fetch base model {uri}: {exc}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return cache
    if uri.startswith(("/", ".", "~")) or "/" not in uri or uri.count("/") > 1:
        raise BundleError(f"base model {uri!r} not found: no such directory (and not a hub id like 'org/name')")
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(uri, allow_patterns=["*.safetensors", "*.json", "tokenizer*", "*.model", "*.txt"])
        )
    except Exception as exc:  # noqa: BLE001 - offline, unknown id, no access
        raise BundleError(f"cannot fetch base model {uri!r} from the hub: {type(exc).__name__}: {exc}") from None


def check_weights(path: Path) -> None:
    if any(path.glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in path.iterdir() if p.suffix in FORBIDDEN_SUFFIXES)
    if pickled:
        raise BundleError(
            f"{path}: only pickle-based weights ({', '.join(pickled)}); convert them to safetensors first"
        )
    raise BundleError(f"{path}: no *.safetensors weight files: not a model directory")


def load_base(uri: str, *, device: str | None = None, expected_sha256: str | None = None):  # noqa: ANN201
    """(model, tokenizer) of a base model, in eval mode on ``device`` (CUDA when present)."""
    _quiet()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_base_dir(uri)
    check_weights(path)
    if expected_sha256 is not None:
        actual = base_sha256(path)
        if actual != expected_sha256:
            raise BundleError(
                f"base model {uri}: sha256 {actual[:12]}… does not match the manifest's {expected_sha256[:12]}…"
            )
    model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device_for(device)).eval()
    return model, tokenizer


@contextmanager
def peft_quietly() -> Iterator[None]:
    """Wrap a model with peft without transformers' deprecation of ``is_gradient_checkpointing``.

    peft reads that property on every wrap; the FutureWarning it raises is noise in every job's
    output that the user can do nothing about. Only that one warning is silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def apply_adapter(model, adapter_dir: Path, *, name: str, weight: float = 1.0):  # noqa: ANN001, ANN201
    """Load one peft adapter onto ``model``, scale it by ``weight`` and merge it into the weights."""
    from peft import PeftModel

    from kernel_lifecycle.registry.kernel_model import scale_adapter

    try:
        with peft_quietly():
            peft_model = PeftModel.from_pretrained(model, adapter_dir, adapter_name=name, is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        detail = str(exc).strip().splitlines()
        shape = next((line.strip() for line in detail if "size mismatch" in line or "shape" in line), detail[0] if detail else "")
        raise BundleError(
            f"adapter {name!r} does not fit this base model ({shape[:200]}); it was trained for another base"
        ) from None
    scale_adapter(peft_model, name, weight)
    return peft_model.merge_and_unload()


def load_kernel(bundle_dir: Path, *, device: str | None = None) -> LoadedKernel:
    """A verified bundle -> its base (sha256 checked) with every adapter applied in order."""
    bundle_dir = Path(bundle_dir)
    manifest = verify_bundle(bundle_dir)
    model, tokenizer = load_base(manifest.base.uri, device=device, expected_sha256=manifest.base.sha256)
    if manifest.base.tokenizer_uri:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(resolve_base_dir(manifest.base.tokenizer_uri))
    for entry in manifest.adapters:
        model = apply_adapter(model, bundle_dir / "adapters" / entry.name, name=entry.name, weight=entry.weight)
    model.eval()
    return LoadedKernel(model=model, tokenizer=tokenizer, manifest=manifest)
