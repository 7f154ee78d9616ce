"""Kernel bundles: ``manifest.json`` plus ``adapters/<name>/`` in peft's own format.

A bundle references its base model by URI and the sha256 of its weight files; it carries its
adapters in order. Loading verifies every hash and refuses anything but safetensors, so a
tampered file or a pickled ``.bin`` never reaches torch.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kernel_lifecycle.errors import BundleError
from kernel_lifecycle.hashing import sha256_file

MANIFEST = "manifest.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
FORBIDDEN_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")

AdapterRole = Literal["adapt", "distill", "upskill", "downskill", "negation", "other"]


class BaseModelRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: str  # a base spec (models.bases): directory, hub id, .gguf file, named base, MLflow artifact URI
    sha256: str  # sha256 over the weight files (see models.bases.base_sha256)
    tokenizer_uri: str | None = None  # defaults to ``uri``
    # what the weights stand on; absent in manifests written before base specs (they still load)
    kind: str | None = None  # "dir", "hub", "gguf" or "artifact"
    source: str | None = None  # the file or hub revision the weights were made from (a GGUF path, "org/name@commit")
    source_sha256: str | None = None  # sha256 of that file's bytes (the GGUF before its conversion)
    # the same weights in the MLflow store (registry.bases), for a base only one machine can resolve
    artifact_uri: str | None = None


class AdapterEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    role: AdapterRole
    skill: str
    sha256: str  # of adapter_model.safetensors
    weight: float = 1.0  # scale when stacking; negative for negation adapters


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: Literal[1] = 1
    kernel: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    base: BaseModelRef
    adapters: list[AdapterEntry] = Field(default_factory=list)
    retained_skills: list[str] = Field(default_factory=list)
    retired_skills: list[str] = Field(default_factory=list)
    parent_version: str | None = None
    job_id: str | None = None
    policy_sha256: str | None = None
    data_digests: dict[str, str] = Field(default_factory=dict)  # dataset name -> sha256
    # how prompts reach the model (models.prompting.PromptFormat as JSON: chat or completion, the
    # chat template's sha256); None in bundles from before it was recorded: the base's default
    prompt_format: dict[str, Any] | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


def read_manifest(bundle_dir: Path) -> Manifest:
    path = bundle_dir / MANIFEST
    if not path.is_file():
        raise BundleError(f"{bundle_dir}: no {MANIFEST}; a bundle is {MANIFEST} + adapters/<name>/")
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        problem = "missing field" if first["type"] == "missing" else first["msg"]
        raise BundleError(
            f"{path}: {problem} at '{where}' ({exc.error_count()} error(s)); fix the manifest"
        ) from None
    except ValueError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None


def verify_bundle(bundle_dir: Path) -> Manifest:
    """Read the manifest and check every adapter file: safetensors only, hashes matching."""
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    for bad in sorted(bundle_dir.rglob("*")):
        if bad.is_file() and bad.suffix in FORBIDDEN_SUFFIXES:
            raise BundleError(
                f"{bad}: pickle-based weights are refused; save adapters as {ADAPTER_WEIGHTS}"
            )
    names = [a.name for a in manifest.adapters]
    if len(set(names)) != len(names):
        raise BundleError(f"{bundle_dir / MANIFEST}: adapter names repeat: {names}")
    for adapter in manifest.adapters:
        folder = bundle_dir / "adapters" / adapter.name
        weights = folder / ADAPTER_WEIGHTS
        if not (folder / ADAPTER_CONFIG).is_file() or not weights.is_file():
            raise BundleError(
                f"{folder}: adapter '{adapter.name}' needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}"
            )
        actual = sha256_file(weights)
        if actual != adapter.sha256:
            raise BundleError(
                f"{weights}: sha256 {actual[:12]}… does not match the manifest's "
                f"{adapter.sha256[:12]}…; the adapter was modified or corrupted"
            )
    return manifest


def write_bundle(bundle_dir: Path, manifest: Manifest, adapter_dirs: dict[str, Path]) -> Path:
    """Write a bundle: copy each adapter folder (peft format) and the manifest.

    ``adapter_dirs`` maps adapter name -> a folder holding adapter_config.json and
    adapter_model.safetensors. An entry without a sha256 gets one from its file; an entry with
    one keeps it, and ``verify_bundle`` (once, at registration) checks every file against it.
    """
    bundle_dir = Path(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for adapter in manifest.adapters:
        if adapter.name not in adapter_dirs:
            raise BundleError(f"adapter '{adapter.name}' is in the manifest but no folder was given")
        target = bundle_dir / "adapters" / adapter.name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
            source = Path(adapter_dirs[adapter.name]) / name
            if not source.is_file():
                raise BundleError(f"{source}: missing; adapters are saved in peft's format")
            shutil.copy2(source, target / name)
        entries.append(adapter if adapter.sha256 else adapter.model_copy(update={"sha256": sha256_file(target / ADAPTER_WEIGHTS)}))
    manifest = manifest.model_copy(update={"adapters": entries})
    (bundle_dir / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return bundle_dir
