"""A kernel version as an MLflow pyfunc model, for consumers who do not have kernel-lifecycle.

MLflow copies this file into every kernel bundle ("models from code": nothing is pickled) and
runs it when ``mlflow.pyfunc.load_model("models:/KERNEL@champion")`` or ``mlflow models serve``
loads the version. It needs only mlflow, torch, transformers, peft and safetensors; it must
never import kernel_lifecycle.

What loading does, every time:
- the bundle is the folder this file sits in: ``manifest.json`` + ``adapters/<name>/``;
- every adapter's ``adapter_model.safetensors`` is checked against the manifest's sha256;
- the base model is found from the manifest's ``base.uri``, in this order:
  1. ``model_config={"base_dir": "/path"}`` given to ``load_model`` (a local copy of the base);
  2. ``base.uri`` when it is a local directory;
  3. an MLflow artifact URI (``runs:/``, ``mlflow-artifacts:/``, ``models:/``), downloaded with the
     current tracking URI (the store the kernel came from) into ``$KL_BASE_CACHE`` (default
     ``~/.cache/kernel-lifecycle/bases``), one folder per base sha256; a base only its machine
     could resolve (a named base, a converted GGUF file) is in the store too: ``base.artifact_uri``;
  4. otherwise a Hugging Face hub id (``org/name``), safetensors files only;
- the base's ``*.safetensors`` files are hashed (names + contents, as the manifest records) and
  must match ``base.sha256``; weights load with ``use_safetensors=True`` and
  ``trust_remote_code=False``; adapters are applied in order, scaled by their weight, merged.

``predict`` takes prompts (a list of strings, or a one-column frame / a series of them) and
returns one greedy completion per prompt (the generated text only, not the prompt). Params:
``max_new_tokens`` (default 64), ``temperature`` (default 0: greedy), ``seed``. A chat kernel
(``prompt_format.kind == "chat"`` in the manifest: its base has a chat template) reads each prompt
as a user message through that template, as it was trained and measured, and ``predict`` returns
the code of its answer (the first fenced block; the answer itself when it has none).
The device is ``KL_DEVICE`` (auto: CUDA when present, in bfloat16; else the CPU in float32).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

if TYPE_CHECKING:  # third-party types only: this file never imports kernel_lifecycle
    from collections.abc import Sequence

    import pandas as pd
    import torch
    from mlflow.pyfunc import PythonModelContext
    from peft import PeftModel

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ARTIFACT_SCHEMES = ("runs:/", "mlflow-artifacts:/", "models:/")


class KernelBundleError(RuntimeError):
    """The bundle or its base is missing, tampered with, or not in safetensors."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:  # in 1 MiB chunks: a base's weights need not fit in memory
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def base_weights_sha256(base_dir: Path) -> str:
    """The manifest's base hash: one sha256 over each ``*.safetensors`` file's name and sha256."""
    digest = hashlib.sha256()
    for path in sorted(p for p in base_dir.rglob("*.safetensors") if p.is_file()):
        digest.update(path.relative_to(base_dir).as_posix().encode() + b"\0" + _sha256(path).encode())
    return digest.hexdigest()


def read_verified_manifest(bundle_dir: Path) -> dict:
    """The manifest, after checking every adapter file against the sha256 it records."""
    path = bundle_dir / MANIFEST
    if not path.is_file():
        raise KernelBundleError(f"{path}: missing; this folder is not a kernel bundle")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for adapter in manifest.get("adapters", []):
        weights = bundle_dir / "adapters" / adapter["name"] / ADAPTER_WEIGHTS
        if not weights.is_file():
            raise KernelBundleError(f"{weights}: missing; the bundle is incomplete")
        actual = _sha256(weights)
        if actual != adapter["sha256"]:
            raise KernelBundleError(
                f"{weights}: sha256 {actual[:12]}… does not match the manifest's {adapter['sha256'][:12]}…; "
                "the adapter was modified or corrupted: re-download the version or register it again"
            )
    return manifest


def _download(uri: str, key: str) -> Path:
    import mlflow.artifacts

    cache = Path(os.environ.get("KL_BASE_CACHE") or Path.home() / ".cache" / "kernel-lifecycle" / "bases")
    target = cache / key
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache, prefix=".dl-"))
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(staging)))
        if not target.exists():
            local.rename(target)
    # broad on purpose: no store, unknown run, no access, a full disk: whatever the artifact
    # repository raises becomes one actionable error (its traceback at DEBUG)
    except Exception as exc:  # noqa: BLE001
        logger.debug("downloading %s failed", uri, exc_info=True)
        raise KernelBundleError(
            f"cannot fetch {uri}: {exc}; set MLFLOW_TRACKING_URI to the kernel's store "
            'or pass model_config={"base_dir": "/local/copy/of/the/base"}'
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def local_dir(uri: str, cache_key: str) -> Path:
    """A local directory for a model URI: the directory itself, an MLflow download, or a hub snapshot."""
    if Path(uri).expanduser().is_dir():
        return Path(uri).expanduser()
    if uri.startswith(ARTIFACT_SCHEMES):
        return _download(uri, cache_key)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(uri, allow_patterns=["*.safetensors", "*.json", "tokenizer*", "*.model", "*.txt"]))
    # broad on purpose: offline, unknown or gated id, bad token: the hub client raises many
    # types; each becomes one actionable error (its traceback at DEBUG)
    except Exception as exc:  # noqa: BLE001
        logger.debug("fetching %s from the hub failed", uri, exc_info=True)
        raise KernelBundleError(
            f"cannot fetch model {uri!r}: {type(exc).__name__}: {exc}; "
            'pass model_config={"base_dir": "/local/copy/of/the/base"}'
        ) from None


def resolve_base(uri: str, expected_sha256: str, base_dir: str | None = None) -> Path:
    """A local directory holding the base named by ``uri`` (or ``base_dir``), its hash checked."""
    path = Path(base_dir).expanduser() if base_dir else local_dir(uri, expected_sha256)
    if not path.is_dir() or not any(path.rglob("*.safetensors")):
        raise KernelBundleError(f"base model {path}: no *.safetensors weight files (pickled weights are refused)")
    actual = base_weights_sha256(path)
    if actual != expected_sha256:
        raise KernelBundleError(
            f"base model {path} (for {uri}): sha256 {actual[:12]}… does not match the manifest's "
            f"{expected_sha256[:12]}…; it is not the base this kernel was trained on"
        )
    return path


def scale_adapter(peft_model: PeftModel, name: str, weight: float) -> None:
    """Scale adapter ``name`` by ``weight`` before it is merged (negative: a negation adapter).

    kernel-lifecycle's own loader uses this too, so both stack adapters the same way."""
    if weight != 1.0:
        for module in peft_model.modules():
            scaling = getattr(module, "scaling", None)
            if isinstance(scaling, dict) and name in scaling:
                scaling[name] *= weight


def _merge_adapter(model: torch.nn.Module, adapter_dir: Path, name: str, weight: float) -> torch.nn.Module:
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(model, adapter_dir, adapter_name=name, is_trainable=False)
    scale_adapter(peft_model, name, weight)
    return peft_model.merge_and_unload()


def first_code_block(text: str) -> str:
    """The code of a chat answer: its first fenced block (to the end when never closed), the text
    before a closing fence that was never opened, else the answer as it is."""
    lines = text.splitlines(keepends=True)
    fences = [i for i, line in enumerate(lines) if line.strip().startswith("```")]
    if not fences:
        return text
    first = fences[0]
    if lines[first].strip() == "```" and "".join(lines[:first]).strip():
        return "".join(lines[:first])  # the answer began with the code, then closed a fence
    end = fences[1] if len(fences) > 1 else len(lines)
    return "".join(lines[first + 1:end])


def _prompts(model_input: str | Sequence[str] | pd.DataFrame | pd.Series) -> list[str]:
    """Prompts from what ``predict`` gets: a string, a list of strings, or a pandas one-column
    frame or series of them (anything else is refused)."""
    if hasattr(model_input, "columns"):  # a pandas DataFrame: its first column
        model_input = model_input.iloc[:, 0]
    if hasattr(model_input, "tolist"):
        model_input = model_input.tolist()
    if isinstance(model_input, str):
        model_input = [model_input]
    if not all(isinstance(p, str) for p in model_input):
        raise TypeError("a kernel takes prompts: a list of strings (or a one-column frame of strings)")
    return list(model_input)


class KernelModel(PythonModel):
    """Base + adapters from the bundle around this file; completions of prompts."""

    # predict is untyped on purpose (see there): MLflow's type-hint wrapper, and its warning
    # asking for hints at every load, are skipped; the explicit signature is the contract
    _skip_type_hint_validation = True

    def load_context(self, context: PythonModelContext) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        bundle_dir = Path(__file__).resolve().parent
        manifest = read_verified_manifest(bundle_dir)
        config = dict(getattr(context, "model_config", None) or {})
        base = manifest["base"]
        uri = base["uri"]
        if base.get("artifact_uri") and not (os.path.isabs(uri) and Path(uri).is_dir()) and not uri.startswith(ARTIFACT_SCHEMES):
            uri = base["artifact_uri"]  # a named base or a GGUF conversion: its copy in the store
        base_dir = resolve_base(uri, base["sha256"], config.get("base_dir"))
        tokenizer_uri = base.get("tokenizer_uri")
        tokenizer_dir = local_dir(tokenizer_uri, hashlib.sha256(tokenizer_uri.encode()).hexdigest()) if tokenizer_uri else base_dir
        model = AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True, trust_remote_code=False)
        for adapter in manifest.get("adapters", []):
            model = _merge_adapter(model, bundle_dir / "adapters" / adapter["name"], adapter["name"], adapter.get("weight", 1.0))
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=False)
        wanted = os.environ.get("KL_DEVICE", "auto")
        self.device = "cuda" if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()) else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = model.to(self.device, dtype=dtype).eval()
        self.kernel = manifest["kernel"]
        self.prompt_format = manifest.get("prompt_format") or {"kind": "completion"}
        if self.prompt_format.get("kind") == "chat" and getattr(self.tokenizer, "chat_template", None) is None:
            raise KernelBundleError("this kernel speaks in chat turns but its base's tokenizer has no chat template")

    def _render(self, prompt: str) -> str:
        if self.prompt_format.get("kind") != "chat":
            return prompt
        system = self.prompt_format.get("system")
        messages = ([{"role": "system", "content": system}] if system is not None else []) + [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _answer(self, text: str) -> str:
        if self.prompt_format.get("kind") != "chat":
            return text
        return first_code_block(text)

    # untyped on purpose: MLflow reads predict's type hints and would validate (and convert)
    # the input by them, changing what a served kernel accepts; the signature says it all
    def predict(self, context, model_input, params=None) -> list[str]:  # noqa: ANN001
        import torch

        params = params or {}
        max_new_tokens = int(params.get("max_new_tokens", 64))
        temperature = float(params.get("temperature", 0.0))
        torch.manual_seed(int(params.get("seed", 0)))
        eos = self.tokenizer.eos_token_id
        completions = []
        chat = self.prompt_format.get("kind") == "chat"
        for prompt in _prompts(model_input):
            encoded = self.tokenizer(self._render(prompt), return_tensors="pt", add_special_tokens=not chat).to(self.device)
            with torch.inference_mode():
                out = self.model.generate(
                    **encoded,
                    max_new_tokens=max_new_tokens,
                    do_sample=temperature > 0,
                    temperature=temperature if temperature > 0 else None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos,
                )
            new_tokens = out[0, encoded["input_ids"].shape[1] :]
            completions.append(self._answer(self.tokenizer.decode(new_tokens, skip_special_tokens=True)))
        return completions


# MLflow runs this file under a module name of its own and takes the model set here; imported
# as part of kernel_lifecycle (for scale_adapter), it registers nothing.
if __name__ != "kernel_lifecycle.registry.kernel_model":
    set_model(KernelModel())
