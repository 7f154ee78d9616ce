"""The reference a retired skill's forgetting is judged against: a model that never knew the skill.

A downskill's candidate can look clean and still relearn the skill in a few steps; how few is
"few" is only meaningful next to a model that never learned it, under the same relearning
budget. This module chooses that model from the kernel's lineage:

- ``version``: the nearest ancestor version (parent first) whose lineage never taught the
  skill. What a version's own job taught is read from its lineage tags: the skills whose
  ``<skill>/train`` data the job read (``kernel.data``), less those the version retires (a
  downskill reads the forget set to unlearn it). A version inherits what its ancestors and its
  origin were taught;
- ``base``: the lineage's origin (``base:<spec>`` in the root version's data: a distill's
  teacher, an adapt's base) when the origin's ``build.json`` lists what it was pretrained on
  and the skill is not among it (a base that does not say what it was trained on may know
  anything, and is never chosen);
- ``retrain``: the origin's recipe without the skill's data, built beforehand (for the demo base:
  ``build_demo_base(without=SKILL)``) and found through this cache's index
  (``$KL_HOME/cache/reference/<origin sha256>-without-<skill>.json``, its weights verified), or
  shipped with the package (the demo base without cobol: every machine compares with the same
  bytes, as it starts from the same base);
- ``none``: no reference can be had; the relearning check falls back to the weaker half-start
  rule and says so.

The policy's ``gate.relearning.reference`` picks: ``auto`` (version, else base, else retrain,
else none), ``base``, ``retrain``, ``none``, or a version number of the lineage. A named
reference that knew the skill, or a retrain that was never built, is refused before any
training, with what to do.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kernel_lifecycle.boundary.report import Reference
from kernel_lifecycle.errors import ConfigurationError
from kernel_lifecycle.models.bases import base_sha256, resolve_base
from kernel_lifecycle.models.loading import load_base, load_kernel
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.registry.client import KernelVersion
from kernel_lifecycle.resources import DEMO_BASE_SHA256, DEMO_REFERENCE_SHA256, demo_reference_dir
from kernel_lifecycle.settings import get_settings

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

CHOICES = ("auto", "base", "retrain", "none")
BUILD_INFO = "build.json"


def data_of(kv: KernelVersion) -> dict[str, str]:
    """The version's data lineage (dataset name -> sha256) from its ``kernel.data`` tag."""
    try:
        data = json.loads(kv.tags.get("kernel.data") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def taught_by(kv: KernelVersion) -> set[str]:
    """Skills this version's own job taught: its ``<skill>/train`` inputs, less what it retires."""
    retired = {s for s in (kv.tags.get("kernel.skills.retired") or "").split(",") if s}
    return {key[: -len("/train")] for key in data_of(kv) if key.endswith("/train")} - retired


def origin_spec(chain: Sequence[KernelVersion]) -> str | None:
    """The base spec the lineage started from (``base:<spec>`` in the root version's data)."""
    if not chain:
        return None
    return next((key[len("base:"):] for key in data_of(chain[-1]) if key.startswith("base:")), None)


def pretrained_on(spec: str) -> set[str] | None:
    """What a base was pretrained on, from its ``build.json`` (``pretrain_probes``); None: unknown."""
    try:
        path = resolve_base(spec).path / BUILD_INFO
    except Exception:  # noqa: BLE001 - a base that cannot be resolved here says nothing about itself
        return None
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    probes = info.get("pretrain_probes")
    return set(probes) if isinstance(probes, dict) else None


# ---- the retrain index ---------------------------------------------------------------------------


def _index_path(origin_sha256: str, skill: str) -> Path:
    return get_settings().cache_dir / "reference" / f"{origin_sha256[:16]}-without-{skill}.json"


def record_retrain(*, origin_sha256: str, skill: str, path: Path, sha256: str, seconds: float) -> Path:
    """Record that ``path`` holds the origin's recipe rebuilt without ``skill`` (written atomically)."""
    index = _index_path(origin_sha256, skill)
    index.parent.mkdir(parents=True, exist_ok=True)
    payload = {"origin_sha256": origin_sha256, "skill": skill, "path": str(path), "sha256": sha256, "seconds": seconds}
    fd, tmp = tempfile.mkstemp(dir=index.parent, prefix=".index-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
    os.replace(tmp, index)
    return index


def shipped_retrain(origin_sha256: str, skill: str) -> tuple[Path, str] | None:
    """The retrain shipped with the package (the demo base without ``skill``), verified; None when none ships."""
    expected = DEMO_REFERENCE_SHA256.get(skill)
    path = demo_reference_dir(skill)
    if origin_sha256 != DEMO_BASE_SHA256 or expected is None or not path.is_dir():
        return None
    actual = base_sha256(path)
    if actual != expected:
        raise ConfigurationError(
            f"the shipped retrain reference in {path} is damaged (weights sha256 {actual[:12]}..., expected {expected[:12]}...): "
            f"reinstall kernel-lifecycle, or build one with `kernel-lifecycle jobs build-base --without {skill} --force`"
        )
    return path, actual


def find_retrain(origin_sha256: str, skill: str) -> tuple[Path, str] | None:
    """(folder, weights sha256) of the retrain of the origin without ``skill``, verified: the
    one recorded in the cache's index (a build here), else the shipped one; None when neither."""
    index = _index_path(origin_sha256, skill)
    if not index.is_file():
        return shipped_retrain(origin_sha256, skill)
    if not index.is_file():
        return None
    entry = json.loads(index.read_text(encoding="utf-8"))
    path = Path(entry["path"])
    if not path.is_dir():
        return shipped_retrain(origin_sha256, skill)
    actual = base_sha256(path)
    if actual != entry["sha256"]:
        raise ConfigurationError(
            f"the retrain reference without {skill} in {path} was modified after it was built (weights sha256 "
            f"{actual[:12]}..., built as {entry['sha256'][:12]}...): delete {index} and build it again"
        )
    return path, actual


# ---- the choice ----------------------------------------------------------------------------------


def choose_reference(
    chain: Sequence[KernelVersion], skill: str, *, choice: str = "auto",
    origin_taught: Callable[[str], set[str] | None] = pretrained_on,
    retrain: Callable[[str, str], tuple[Path, str] | None] | None = None,
) -> Reference:
    """The reference for retiring ``skill`` from a child of ``chain[0]`` (``chain``: the parent's
    lineage, parent first, root last). See the module doc for ``choice``."""
    retrain = retrain or find_retrain
    spec = origin_spec(chain)
    origin_knows = None if spec is None else origin_taught(spec)
    # inherited[i]: what chain[i] was taught, its own job's and every ancestor's and the origin's
    inherited: list[set[str] | None] = [None] * len(chain)
    acc: set[str] | None = origin_knows
    for i in range(len(chain) - 1, -1, -1):
        acc = None if acc is None else acc | taught_by(chain[i])
        inherited[i] = acc
    clean = [i for i, taught in enumerate(inherited) if taught is not None and skill not in taught]
    origin_clean = origin_knows is not None and skill not in origin_knows
    origin_sha = _origin_sha(spec)
    why_origin = (
        f"the origin {spec!r} does not say what it was trained on" if origin_knows is None
        else f"the origin {spec!r} was pretrained on {', '.join(sorted(origin_knows))}"
    ) if spec is not None else "the lineage names no origin base"

    def version(i: int, why: str) -> Reference:
        kv = chain[i]
        return Reference(kind="version", name=f"{kv.name} v{kv.version}", version=kv.version, why=why,
                         sha256=kv.tags.get("kernel.base_sha256"))

    def base(why: str) -> Reference:
        return Reference(kind="base", name=str(spec), spec=spec, why=why, sha256=origin_sha)

    def retrained(why: str) -> Reference | None:
        found = retrain(origin_sha, skill) if origin_sha else None
        if found is None:
            return None
        path, sha = found
        return Reference(kind="retrain", name=f"{spec} rebuilt without {skill}", spec=str(path), why=why, sha256=sha)

    if choice == "none":
        return Reference(kind="none", name="none", why="the policy asks for no reference: the half-start rule (weaker)")
    if choice == "auto":
        if clean:
            return version(clean[0], f"the nearest ancestor whose lineage never taught {skill}")
        if origin_clean:
            return base(f"no ancestor version fits (each lineage taught {skill}); the origin was never pretrained on {skill}")
        ref = retrained(f"no ancestor fits and {why_origin}: the origin's recipe rebuilt without {skill}'s data")
        if ref is not None:
            return ref
        return Reference(
            kind="none", name="none",
            why=f"no ancestor fits, {why_origin}, and no retrain without {skill} was built: the half-start rule (weaker)",
        )
    if choice == "base":
        if not origin_clean:
            raise ConfigurationError(f"the policy names the base as the reference for {skill}, but {why_origin}: "
                                     f"a model that knew {skill} is no reference; use `reference: retrain` or auto")
        return base(f"named by the policy; never pretrained on {skill}")
    if choice == "retrain":
        ref = retrained(f"named by the policy: the origin's recipe rebuilt without {skill}'s data")
        if ref is None:
            raise ConfigurationError(
                f"the policy asks for a retrain reference for {skill}, but none was built for the origin {spec!r}: "
                f"build it with `kernel-lifecycle jobs build-base --without {skill}` (the demo base), or set reference: auto"
            )
        return ref
    for i, kv in enumerate(chain):
        if kv.version == choice:
            if i not in clean:
                raise ConfigurationError(f"the policy names v{choice} as the reference for {skill}, but its lineage taught "
                                         f"{skill}: a model that knew the skill is no reference")
            return version(i, "named by the policy; its lineage never taught the skill")
    raise ConfigurationError(
        f"the policy names reference {choice!r} for {skill}: not one of {', '.join(CHOICES)} nor a version of this lineage "
        f"({', '.join('v' + kv.version for kv in chain) or 'none'})"
    )


def _origin_sha(spec: str | None) -> str | None:
    if spec is None:
        return None
    try:
        return resolve_base(spec).sha256
    except Exception:  # noqa: BLE001 - an origin not resolvable here has no retrain here either
        return None


def load_reference(ref: Reference) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The reference model (eval mode) and its tokenizer."""
    if ref.kind == "version":
        kernel = ref.name.rsplit(" v", 1)[0]
        loaded = load_kernel(registry.fetch_bundle(registry.get_version(kernel, str(ref.version))))
        return loaded.model, loaded.tokenizer
    if ref.kind in ("base", "retrain"):
        return load_base(str(ref.spec), expected_sha256=ref.sha256)
    raise ValueError(f"reference {ref.name!r} ({ref.kind}) is no model")
