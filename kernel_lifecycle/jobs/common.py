"""Pieces the recipes share: skills' data, boundary measurements at checkpoints (``Curves``), the
final report, and the bundle of the version a job produces."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel_lifecycle.boundary import prompts
from kernel_lifecycle.boundary.evaluate import evaluate_kernel, measure_skills
from kernel_lifecycle.boundary.plot import plot_curves
from kernel_lifecycle.boundary.report import BoundaryReport, SkillMetrics
from kernel_lifecycle.boundary.skills import Probe, Skill, skills_named
from kernel_lifecycle.boundary.tracking import log_step_metrics
from kernel_lifecycle.display import ProgressLike
from kernel_lifecycle.errors import JobError
from kernel_lifecycle.jobs.config import Thresholds
from kernel_lifecycle.jobs.runner import JobContext
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.registry.bundle import AdapterEntry, BaseModelRef, Manifest, write_bundle
from kernel_lifecycle.training.data import Example, encode_probes
from kernel_lifecycle.training.lora import active_adapter

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def report_skills(names: list[str], job_skills: dict[str, Skill]) -> dict[str, Skill]:
    """The job's skills plus any others the report must measure, in a stable order."""
    extra = skills_named([n for n in names if n not in job_skills])
    return dict(sorted({**job_skills, **extra}.items()))


def training_probes(skills: dict[str, Skill]) -> dict[str, list[Probe]]:
    """Everything a job trains on, by skill: the contamination check's reference."""
    return {name: s.probes("train") for name, s in skills.items()}


def require_new_kernel(kernel: str, *, kind: str) -> None:
    """A first version's job (distill, adapt) refuses a kernel that already has versions."""
    if registry.kernel_exists(kernel) and registry.list_versions(kernel):
        raise JobError(
            f"kernel {kernel!r} already has versions; {kind} creates a kernel's first version "
            "(use upskill/downskill to change it, or pick a new name)"
        )


def require_train_data(skill: Skill) -> None:
    if not skill.probes("train"):
        raise JobError(f"skill {skill.name!r} has an empty train split; nothing to train on")


def log_data_inputs(ctx: JobContext, skills: dict[str, Skill], split: str = "train") -> dict[str, str]:
    digests = {}
    for name, skill in skills.items():
        digest = skill.digest(split)  # type: ignore[arg-type]
        digests[f"{name}/{split}"] = digest
        ctx.log_dataset(f"{name}/{split}", digest, str(skill.root / f"{split}.jsonl"))
    return digests


def final_report(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: Any, *, skills: dict[str, Skill],
    trained_on: dict[str, Skill], progress: ProgressLike | None = None,
) -> BoundaryReport:
    """The boundary report a version is registered with: the gate split, fresh, all checks."""
    return evaluate_kernel(
        model,
        tokenizer,
        kernel=config.kernel,
        version=None,
        skills=report_skills(config.report_skills, skills),
        harness=config.harness,
        settings=config.checks,
        training_probes=training_probes(trained_on),
        progress=progress,
    )


def new_version_bundle(
    out: Path,
    *,
    parent: Manifest | None,
    parent_bundle: Path | None,
    kernel: str,
    base: BaseModelRef,
    new_adapter: tuple[AdapterEntry, Path] | None,
    retained: list[str],
    retired: list[str],
    parent_version: str | None,
    job_id: str,
    policy_sha256: str | None,
    data_digests: dict[str, str],
    prompt_format: dict[str, Any] | None = None,
) -> Path:
    """Parent's adapters (in order) + the job's new one, with the lineage fields filled in."""
    entries: list[AdapterEntry] = []
    folders: dict[str, Path] = {}
    if parent is not None and parent_bundle is not None:
        for entry in parent.adapters:
            entries.append(entry)
            folders[entry.name] = parent_bundle / "adapters" / entry.name
    if new_adapter is not None:
        entry, folder = new_adapter
        if entry.name in folders:
            raise JobError(f"adapter name {entry.name!r} already exists in the parent kernel")
        entries.append(entry)
        folders[entry.name] = folder
    manifest = Manifest(
        kernel=kernel,
        base=base,
        adapters=entries,
        retained_skills=retained,
        retired_skills=retired,
        parent_version=parent_version,
        job_id=job_id,
        policy_sha256=policy_sha256,
        data_digests=data_digests,
        prompt_format=prompt_format,
    )
    return write_bundle(out, manifest, folders)


def config_params(config: Any) -> dict[str, Any]:
    """A job config as the job row's params (the thresholds and harness are logged apart)."""
    return config.model_dump(mode="json", exclude={"thresholds", "harness"})


def encode_skills(skills: dict[str, Skill], tokenizer: PreTrainedTokenizerBase) -> list[Example]:
    """Every skill's train probes as training examples (solution-only labels)."""
    return [e for s in skills.values()
            for e in encode_probes(s.probes("train"), tokenizer, what=f"{s.name} train", **prompts.answer_kind(s))]


@dataclass
class Curves:
    """The per-checkpoint measurements of a job: logged as MLflow step metrics (the curves in
    MLflow's charts), kept for choosing a checkpoint and for the plot. Called as the training
    loop's ``on_checkpoint``; with ``keep_adapter`` it also keeps each checkpoint's LoRA weights."""

    run_id: str
    tokenizer: PreTrainedTokenizerBase
    skills: dict[str, Skill]
    roles: dict[str, str]  # skill -> curve role (forget, retain, learn)
    max_problems: int
    max_new_tokens: int
    split: str = "dev"  # the selection split: never the gate split
    seed: int = 0
    keep_adapter: bool = False
    history: list[tuple[int, dict[str, SkillMetrics]]] = field(default_factory=list)
    adapters: dict[int, dict] = field(default_factory=dict)

    def __call__(self, step: int, model: PreTrainedModel) -> None:
        import torch

        model.eval()
        with torch.inference_mode():
            metrics = measure_skills(
                model, self.tokenizer, self.skills, split=self.split, max_problems=self.max_problems,
                max_new_tokens=self.max_new_tokens, seed=self.seed,
            )
        log_step_metrics(self.run_id, metrics, step, roles=self.roles)
        self.history.append((step, metrics))
        if self.keep_adapter:
            from peft import get_peft_model_state_dict

            self.adapters[step] = copy.deepcopy(get_peft_model_state_dict(model, adapter_name=active_adapter(model)))

    def plot(self, ctx: JobContext, *, retired: list[str], retained: list[str], thresholds: Thresholds, chosen_step: int | None, title: str | None = None) -> None:
        png = plot_curves(
            self.history, retired=retired, retained=retained, thresholds=thresholds.as_roles(),
            chosen_step=chosen_step, path=ctx.workdir / "curves.png", title=title,
        )
        ctx.log_artifact(png, "boundary")
