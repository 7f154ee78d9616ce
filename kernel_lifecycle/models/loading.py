"""Loading base models and kernels: transformers + peft + safetensors only, hashes verified.

A base is any base spec (``models.bases``: a local directory, a hub id, a GGUF file, a named base
such as ``smollm2``, an MLflow artifact URI), resolved to a local Hugging Face directory. Weights
must be safetensors; ``trust_remote_code`` is never on. Models land where ``KL_DEVICE`` says, in
the dtype that goes with it (``models.device.placement``). A kernel is its base with its adapters
applied in order, each merged into the weights, so what comes back is a plain transformers model.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kernel_lifecycle.errors import BundleError
from kernel_lifecycle.models.bases import (
    ARTIFACT_SCHEMES,
    ResolvedBase,
    base_sha256,
    quiet_transformers,
    resolve_base,
)
from kernel_lifecycle.models.device import placement
from kernel_lifecycle.models.prompting import PromptFormat, attach
from kernel_lifecycle.registry.bundle import FORBIDDEN_SUFFIXES, BaseModelRef, Manifest, verify_bundle

if TYPE_CHECKING:
    import torch

__all__ = [
    "ARTIFACT_SCHEMES", "LoadedKernel", "ResolvedBase", "apply_adapter", "base_ref", "base_sha256", "check_weights",
    "ensure_pad_token", "load_base", "load_kernel", "peft_quietly", "resolve_base", "resolve_base_dir",
]


@dataclass
class LoadedKernel:
    model: object  # transformers PreTrainedModel, adapters merged
    tokenizer: object
    manifest: Manifest


def resolve_base_dir(uri: str) -> Path:
    """A local directory holding the base model's files (any base spec; see ``resolve_base``)."""
    return resolve_base(uri).path


def base_ref(base: ResolvedBase, *, tokenizer_uri: str | None = None) -> BaseModelRef:
    """What a manifest records of a base: its spec, the weights' sha256 and what they stand on."""
    return BaseModelRef(uri=base.uri, sha256=base.sha256, tokenizer_uri=tokenizer_uri, kind=base.kind,
                        source=base.source, source_sha256=base.source_sha256)


def check_weights(path: Path) -> None:
    if any(path.glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in path.iterdir() if p.suffix in FORBIDDEN_SUFFIXES)
    if pickled:
        raise BundleError(
            f"{path}: only pickle-based weights ({', '.join(pickled)}); convert them to safetensors first"
        )
    raise BundleError(f"{path}: no *.safetensors weight files: not a model directory")


def _verify(base: ResolvedBase, expected_sha256: str, expected_source_sha256: str | None) -> None:
    actual = base.sha256  # refuses a GGUF cache entry modified since its conversion
    if actual == expected_sha256:
        return
    why = ""
    if expected_source_sha256 and base.source_sha256 and expected_source_sha256 != base.source_sha256:
        why = (f"; its source file is another one too (sha256 {base.source_sha256[:12]}…, "
               f"the manifest's {expected_source_sha256[:12]}…)")
    elif expected_source_sha256 and expected_source_sha256 == base.source_sha256:
        why = "; same GGUF file, converted differently here (another transformers or gguf version)"
    raise BundleError(
        f"base model {base.spec}: sha256 {actual[:12]}… does not match the manifest's {expected_sha256[:12]}…{why}"
    )


def ensure_pad_token(tokenizer, *, where: str) -> None:  # noqa: ANN001
    """Give ``tokenizer`` a pad token: its own, else its eos token.

    Padding with eos is safe here: generation pads on the left under an attention mask and stops
    at the first *new* eos, and training masks pad positions out of the loss, so which token fills
    a pad position never matters. A tokenizer with neither token is refused: nothing could end or
    batch its generations.
    """
    if tokenizer.pad_token_id is not None:
        return
    if tokenizer.eos_token_id is None:
        raise BundleError(
            f"base {where}: its tokenizer has neither a pad token nor an eos token, so generations cannot end "
            "or be batched; set eos_token (and pad_token) in its tokenizer_config.json"
        )
    tokenizer.pad_token = tokenizer.eos_token


def _load(base: ResolvedBase, *, device: torch.device, dtype: torch.dtype, expected_sha256: str | None = None,
          expected_source_sha256: str | None = None):  # noqa: ANN202
    quiet_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_weights(base.path)
    if expected_sha256 is not None:
        _verify(base, expected_sha256, expected_source_sha256)
    tokenizer = AutoTokenizer.from_pretrained(base.path, trust_remote_code=False)
    ensure_pad_token(tokenizer, where=repr(base.spec))
    model = AutoModelForCausalLM.from_pretrained(base.path, use_safetensors=True, trust_remote_code=False,
                                                 dtype=dtype)
    model.to(device).eval()
    return model, tokenizer


def load_base(base: str | ResolvedBase, *, device: str | None = None, expected_sha256: str | None = None):  # noqa: ANN201
    """(model, tokenizer) of a base (any base spec, or one already resolved), in eval mode, placed
    on ``device`` (default ``KL_DEVICE``) in its dtype; ``expected_sha256`` verified when given."""
    target, dtype = placement(device)
    resolved = base if isinstance(base, ResolvedBase) else resolve_base(base)
    return _load(resolved, device=target, dtype=dtype, expected_sha256=expected_sha256)


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

    # lazy: registry.kernel_model imports mlflow at its top (seconds); loading a base needs none of it
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
    """A verified bundle -> its base (any base spec, sha256 checked) with every adapter applied in order.

    Adapters merge into float32 weights on the target device, and the merged model is cast to
    the device's dtype once at the end: merging into bfloat16 would round every delta.
    """
    import torch

    bundle_dir = Path(bundle_dir)
    manifest = verify_bundle(bundle_dir)
    target, dtype = placement(device)
    base = resolve_base(manifest.base.uri)
    model, tokenizer = _load(base, device=target, dtype=torch.float32, expected_sha256=manifest.base.sha256,
                             expected_source_sha256=manifest.base.source_sha256)
    if manifest.base.tokenizer_uri:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(resolve_base(manifest.base.tokenizer_uri).path,
                                                  trust_remote_code=False)
        ensure_pad_token(tokenizer, where=repr(manifest.base.tokenizer_uri))
    if manifest.prompt_format is not None:  # the version's recorded format (its template checked)
        attach(tokenizer, PromptFormat.model_validate(manifest.prompt_format))
    for entry in manifest.adapters:
        model = apply_adapter(model, bundle_dir / "adapters" / entry.name, name=entry.name, weight=entry.weight)
    model.to(dtype).eval()
    return LoadedKernel(model=model, tokenizer=tokenizer, manifest=manifest)
