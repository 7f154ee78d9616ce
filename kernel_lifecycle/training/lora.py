"""A new LoRA adapter on a kernel: attach, find the active one, save in peft's own format.

The model loader merges a kernel's earlier adapters into the weights, so a job hands us a plain
transformers model and the new adapter learns a delta on top of that merged model. Saving
writes exactly what a bundle holds (``adapter_config.json`` + ``adapter_model.safetensors``),
loadable with ``peft.PeftModel.from_pretrained`` and nothing from this project.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from kernel_lifecycle.errors import JobError
from kernel_lifecycle.hashing import sha256_file
from kernel_lifecycle.models.loading import peft_quietly
from kernel_lifecycle.registry.bundle import ADAPTER_CONFIG, ADAPTER_WEIGHTS

if TYPE_CHECKING:
    from peft import PeftModel

# Module names by architecture family. Attention alone is the classic LoRA recipe; the MLP
# projections carry much of a model's "knowledge", so adding them helps both learning a new
# technology and removing an old one at little extra cost on small kernels.
_LLAMA_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_LLAMA_MLP = ("gate_proj", "up_proj", "down_proj")
_GPT2_ATTENTION = ("c_attn",)
_GPT2_MLP = ("c_fc", "c_proj")  # GPT-2's c_proj also names the attention output: both adapt


@dataclass(frozen=True)
class SavedAdapter:
    path: Path  # folder with adapter_config.json + adapter_model.safetensors
    sha256: str  # of adapter_model.safetensors, as the bundle manifest records it


def target_modules(model: torch.nn.Module, *, include_mlp: bool = True) -> list[str]:
    """The LoRA target module names present in ``model`` (Llama- or GPT-2-style)."""
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for attention, mlp in ((_LLAMA_ATTENTION, _LLAMA_MLP), (_GPT2_ATTENTION, _GPT2_MLP)):
        if set(attention) <= present:
            wanted = attention + (mlp if include_mlp else ())
            return [m for m in wanted if m in present]
    raise JobError(
        f"cannot find LoRA target modules in {type(model).__name__}: expected Llama-style "
        f"{'/'.join(_LLAMA_ATTENTION)} or GPT-2-style c_attn; pass target_modules explicitly"
    )


def attach_lora(
    model: torch.nn.Module,
    *,
    adapter_name: str = "default",
    r: int = 8,
    alpha: float = 16,
    dropout: float = 0.0,
    targets: list[str] | None = None,
    include_mlp: bool = True,
    seed: int | None = None,
    layers_to_transform: Sequence[int] | None = None,
    heads: Mapping[int, Sequence[int]] | None = None,
) -> PeftModel:
    """Wrap ``model`` in a PeftModel with one new trainable adapter; only it trains.

    ``layers_to_transform`` (peft's own option) puts the adapter on those decoder layers only;
    ``heads`` (layer -> head indices, Llama-style attention targets only) further confines the
    adapter's changes to those heads: see :func:`restrict_to_heads`. Both default to everywhere.

    ``dropout`` defaults to 0: the adapters here are small and few-step, and NPO compares the
    adapted model with itself adapter-off, where dropout noise would only blur that ratio.
    rsLoRA stays off on purpose: with it, peft's ``add_weighted_adapter`` no longer negates
    a single adapter exactly (negation relies on that).
    """
    from peft import LoraConfig, get_peft_model

    names = targets or target_modules(model, include_mlp=include_mlp)
    is_gpt2 = "c_attn" in names
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=names,
        bias="none",
        task_type="CAUSAL_LM",
        fan_in_fan_out=is_gpt2,  # GPT-2's Conv1D stores weights transposed
        layers_to_transform=list(layers_to_transform) if layers_to_transform is not None else None,
    )
    # LoRA's A matrices start random: seed them so a job's result depends only on its seed,
    # without disturbing the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]), peft_quietly():
        if seed is not None:
            torch.manual_seed(seed)
        peft_model = get_peft_model(model, config, adapter_name=adapter_name)
    if heads is not None:
        restrict_to_heads(peft_model, adapter_name, heads)
    return peft_model


_HEAD_ROWS = {"q_proj": "heads", "k_proj": "kv_heads", "v_proj": "kv_heads"}  # per-head output rows
_LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")


def restrict_to_heads(model: PeftModel, adapter_name: str, heads: Mapping[int, Sequence[int]]) -> int:
    """Confine a LoRA adapter's change to the given attention heads; returns the masked modules.

    A head owns rows of q/k/v_proj's output (``lora_B`` rows) and columns of o_proj's input
    (``lora_A`` columns). Those of other heads start at zero and a gradient hook keeps them at
    zero (AdamW with zero gradients and no decay never moves them), so the saved adapter is an
    ordinary peft adapter whose delta touches only the chosen heads. MLP targets are refused:
    they have no heads.
    """
    config = model.config
    n_heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or n_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    wanted = {int(layer): sorted({int(h) for h in hs}) for layer, hs in heads.items()}
    masked = 0
    for name, module in model.named_modules():
        lora_a, lora_b = getattr(module, "lora_A", None), getattr(module, "lora_B", None)
        if lora_a is None or adapter_name not in lora_a:
            continue
        kind = name.rsplit(".", 1)[-1]
        if kind not in (*_HEAD_ROWS, "o_proj"):
            raise JobError(f"a head mask needs attention targets (q/k/v/o_proj), but {name} is a LoRA target")
        match = _LAYER_INDEX.search(name + ".")
        chosen = wanted.get(int(match.group(1)), []) if match else []
        per = kv_heads if _HEAD_ROWS.get(kind) == "kv_heads" else n_heads
        # grouped-query attention: a kv head serves n_heads // kv_heads query heads
        owners = sorted({h * per // n_heads for h in chosen})
        keep = torch.zeros(per * head_dim)
        for h in owners:
            keep[h * head_dim : (h + 1) * head_dim] = 1
        if kind == "o_proj":
            param, mask = lora_a[adapter_name].weight, keep[None, :]  # (r, in): columns
        else:
            param, mask = lora_b[adapter_name].weight, keep[:, None]  # (out, r): rows
        mask = mask.to(param.dtype)
        with torch.no_grad():
            param.mul_(mask)
        param.register_hook(lambda grad, m=mask: grad * m)
        masked += 1
    if not masked:
        raise JobError(f"adapter {adapter_name!r} has no LoRA modules to confine to heads")
    return masked


def active_adapter(model: PeftModel) -> str:
    """The name of the adapter that is active (the one a job saves)."""
    name = model.active_adapter
    return name[0] if isinstance(name, list) else name


def save_adapter(model: PeftModel, out_dir: Path, *, adapter_name: str | None = None) -> SavedAdapter:
    """Save one adapter in peft's format into ``out_dir`` itself and report its sha256.

    peft puts every adapter not named "default" into a subfolder of the target; a bundle wants
    the two files at the top of ``adapters/<name>/``, so we save to a scratch folder and move
    just those two files. Weights are always safetensors (never pickle).
    """
    name = adapter_name or active_adapter(model)
    if name not in model.peft_config:
        known = ", ".join(sorted(model.peft_config)) or "none"
        raise JobError(f"no adapter named {name!r} on the model; adapters: {known}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as scratch:
        model.save_pretrained(scratch, selected_adapters=[name], safe_serialization=True)
        source = Path(scratch) if name == "default" else Path(scratch) / name
        for file in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
            if not (source / file).is_file():
                raise JobError(f"peft did not write {file} for adapter {name!r}")
            shutil.move(str(source / file), out_dir / file)
    return SavedAdapter(path=out_dir, sha256=sha256_file(out_dir / ADAPTER_WEIGHTS))
