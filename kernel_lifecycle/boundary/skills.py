"""Skills as data: a name, the scorer that arbitrates it, and probes in five splits.

On disk a skill is a folder ``<name>/`` holding ``skill.json`` (name, scorer, description,
metric) and one ``<split>.jsonl`` per split: one probe per line in HumanEval's shape
(``task_id``, ``prompt``, ``canonical_solution``, ``test``, ``entry_point``) plus the
``family`` it comes from (the template or concept; ``""`` when a skill does not say).

- ``train``: what jobs train on (the training families);
- ``dev``: in-family, new names and constants; for selection only (checkpoints, early stopping);
- ``test``: in-family, disjoint from train and dev: the gate split, never read during a job;
- ``fresh``: held-out families, in no other split in any form: does a kernel keep (or lose)
  what its jobs never showed it;
- ``relearn``: in-family, disjoint from all of the above: what a relearning check fine-tunes on.

A missing split file is an empty split, so skills written before a split existed still load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kernel_lifecycle.errors import NotFoundError
from kernel_lifecycle.settings import get_settings

SPLITS = ("train", "dev", "test", "fresh", "relearn")
Split = Literal["train", "dev", "test", "fresh", "relearn"]
UNKNOWN_FAMILY = "unknown"  # how a probe without a family is shown
# Beside the splits of a demo skill, not a split: extra text the demo base pretrains on (held-out
# families' combinations no shipped probe has); never measured, never read by a job.
PRETRAIN_FILE = "pretrain.jsonl"

DEMO_SKILLS_DIR = Path(__file__).resolve().parent.parent / "demo" / "skills"


class Probe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str
    prompt: str
    canonical_solution: str
    test: str = ""
    entry_point: str = ""
    family: str = ""

    @property
    def family_label(self) -> str:
        return self.family or UNKNOWN_FAMILY


class SkillSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    scorer: str
    description: str = ""
    # "pass_rate": pass@k of executed tests; "compile_rate": share of programs the compiler accepts
    metric: Literal["pass_rate", "compile_rate"] = "pass_rate"
    # What a chat base is told before each probe (its user message is ``instruction``, a blank
    # line, then the probe's prompt); a completion base reads the prompt alone. Part of every
    # split's digest: a report measured under another instruction is not comparable.
    instruction: str = ""


class Skill:
    """A skill loaded from its folder. Probes are read lazily and cached."""

    def __init__(self, spec: SkillSpec, root: Path) -> None:
        self.spec = spec
        self.root = root

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def scorer(self) -> str:
        return self.spec.scorer

    def probes(self, split: Split) -> list[Probe]:
        return self._splits[split]

    @cached_property
    def _splits(self) -> dict[str, list[Probe]]:
        out: dict[str, list[Probe]] = {}
        for split in SPLITS:
            path = self.root / f"{split}.jsonl"
            lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
            out[split] = [Probe.model_validate_json(line) for line in lines if line.strip()]
        return out

    @property
    def instruction(self) -> str:
        return self.spec.instruction

    def digest(self, split: Split) -> str:
        """sha256 of a split's file (and of the skill's instruction, when it has one): the dataset
        digest logged as an MLflow input; it changes whenever what a kernel is asked changes."""
        path = self.root / f"{split}.jsonl"
        if not path.exists():
            return ""
        h = hashlib.sha256(path.read_bytes())
        if self.spec.instruction:
            h.update(b"\0instruction\0" + self.spec.instruction.encode("utf-8"))
        return h.hexdigest()


def load_skill(root: Path) -> Skill:
    spec = SkillSpec.model_validate(json.loads((root / "skill.json").read_text(encoding="utf-8")))
    return Skill(spec, root)


def skills_root() -> Path:
    """Where skills are read from: ``KL_SKILLS_DIR``, else the bundled demo skills."""
    return get_settings().skills_dir or DEMO_SKILLS_DIR


# Skill packs a kernel's policy names (skill name -> pack folder), for the job, gate or inventory
# running now: a context variable, so two kernels' jobs in one scheduler (threads) or one process
# (one after the other) each read their own skills. Set with ``skill_sources``.
_SOURCES: ContextVar[Mapping[str, Path]] = ContextVar("kl_skill_sources", default={})


@contextmanager
def skill_sources(packs: Mapping[str, str | Path]) -> Iterator[None]:
    """Within this block, a skill named in ``packs`` is read from its pack folder (not from
    ``KL_SKILLS_DIR`` or the demo skills)."""
    token = _SOURCES.set({name: Path(path) for name, path in packs.items()})
    try:
        yield
    finally:
        _SOURCES.reset(token)


def demo_skills(root: Path | None = None) -> dict[str, Skill]:
    """Every skill folder under ``root`` by name (default: ``skills_root()``, with the packs of
    ``skill_sources`` over it)."""
    packs = {} if root is not None else {name: load_skill(path) for name, path in _SOURCES.get().items()}
    root = root or skills_root()
    if not root.is_dir():
        return packs
    return {
        skill.name: skill
        for skill in (load_skill(p) for p in sorted(root.iterdir()) if (p / "skill.json").exists())
    } | packs


def skills_named(names: Sequence[str], root: Path | None = None) -> dict[str, Skill]:
    """The named skills, read from one scan of the folder; an unknown name is a clear error."""
    skills = demo_skills(root)
    for name in names:
        if name not in skills:
            known = ", ".join(sorted(skills)) or "none"
            raise NotFoundError(f"unknown skill {name!r}; known skills: {known}")
    return {name: skills[name] for name in names}
