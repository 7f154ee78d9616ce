"""Pieces the distill, upskill and downskill jobs share: skills' data, a kernel's model,
boundary measurements at checkpoints, and the bundle of the version a job produces."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel_lifecycle.boundary.report import BoundaryReport, SkillMetrics
from kernel_lifecycle.boundary.skills import Skill, skills_named
from kernel_lifecycle.errors import JobError
from kernel_lifecycle.jobs.config import Thresholds
from kernel_lifecycle.registry.bundle import AdapterEntry, Manifest, write_bundle


def report_skills(names: list[str], job_skills: dict[str, Skill]) -> dict[str, Skill]:
    """The job's skills plus any others the report must measure, in a stable order."""
    extra = skills_named([n for n in names if n not in job_skills])
    return dict(sorted({**job_skills, **extra}.items()))


def training_probes(skills: dict[str, Skill]) -> dict[str, list]:
    """Everything a job trains on, by skill: the contamination check's reference."""
    return {name: s.probes("train") for name, s in skills.items()}


def require_train_data(skill: Skill) -> None:
    if not skill.probes("train"):
        raise JobError(f"skill {skill.name!r} has an empty train split; nothing to train on")


def log_data_inputs(ctx, skills: dict[str, Skill], split: str = "train") -> dict[str, str]:  # noqa: ANN001
    digests = {}
    for name, skill in skills.items():
        digest = skill.digest(split)  # type: ignore[arg-type]
        digests[f"{name}/{split}"] = digest
        ctx.log_dataset(f"{name}/{split}", digest, str(skill.root / f"{split}.jsonl"))
    return digests


def final_report(model, tokenizer, config, *, skills: dict[str, Skill], trained_on: dict[str, Skill], progress=None) -> BoundaryReport:  # noqa: ANN001
    """The boundary report a version is registered with: the gate split, fresh, all checks."""
    from kernel_lifecycle.boundary.evaluate import evaluate_kernel

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
    base,  # noqa: ANN001 - BaseModelRef
    new_adapter: tuple[AdapterEntry, Path] | None,
    retained: list[str],
    retired: list[str],
    parent_version: str | None,
    job_id: str,
    policy_sha256: str | None,
    data_digests: dict[str, str],
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
    )
    return write_bundle(out, manifest, folders)


def config_params(config) -> dict[str, Any]:  # noqa: ANN001
    """A job config as the job row's params (the thresholds and harness are logged apart)."""
    return config.model_dump(mode="json", exclude={"thresholds", "harness"})


def encode_skills(skills: dict[str, Skill], tokenizer) -> list:  # noqa: ANN001
    """Every skill's train probes as training examples (solution-only labels)."""
    from kernel_lifecycle.training.data import encode_probes

    return [e for s in skills.values() for e in encode_probes(s.probes("train"), tokenizer, what=f"{s.name} train")]


@dataclass
class Curves:
    """The per-checkpoint measurements of a job: logged as MLflow step metrics (the curves in
    MLflow's charts), kept for choosing a checkpoint and for the plot. Called as the training
    loop's ``on_checkpoint``; with ``keep_adapter`` it also keeps each checkpoint's LoRA weights."""

    run_id: str
    tokenizer: Any
    skills: dict[str, Skill]
    roles: dict[str, str]  # skill -> curve role (forget, retain, learn)
    max_problems: int
    max_new_tokens: int
    split: str = "dev"  # the selection split: never the gate split
    seed: int = 0
    keep_adapter: bool = False
    history: list[tuple[int, dict[str, SkillMetrics]]] = field(default_factory=list)
    adapters: dict[int, dict] = field(default_factory=dict)

    def __call__(self, step: int, model) -> None:  # noqa: ANN001
        import copy

        import torch

        from kernel_lifecycle.boundary.evaluate import measure_skills
        from kernel_lifecycle.boundary.tracking import log_step_metrics

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

            from kernel_lifecycle.training.lora import active_adapter

            self.adapters[step] = copy.deepcopy(get_peft_model_state_dict(model, adapter_name=active_adapter(model)))

    def plot(self, ctx, *, retired: list[str], retained: list[str], thresholds: Thresholds, chosen_step: int | None, title: str | None = None) -> None:  # noqa: ANN001
        from kernel_lifecycle.boundary.plot import plot_curves

        png = plot_curves(
            self.history, retired=retired, retained=retained, thresholds=thresholds.as_roles(),
            chosen_step=chosen_step, path=ctx.workdir / "curves.png", title=title,
        )
        ctx.log_artifact(png, "boundary")


@dataclass
class ChildJob:
    """A job that stacks one new LoRA adapter on a registered parent version (upskill, downskill)."""

    ctx: Any  # runner.JobContext
    bar: Any  # the rich progress bar, or None
    parent_kv: Any  # registry.KernelVersion
    parent_bundle: Path
    parent: Manifest
    tokenizer: Any
    model: Any  # a PeftModel whose active adapter is the job's new one
    digests: dict[str, str]
    target: dict = field(default_factory=dict)  # where the adapter sits (lineage: kernel.target)

    def register(
        self, report: BoundaryReport, *, skill: str, retained: list[str], retired: list[str],
        policy_sha256: str | None, description: str,
    ):  # noqa: ANN201 - registry.KernelVersion
        """Save the job's adapter, log its report, write parent's adapters + it, and register."""
        from kernel_lifecycle.training.lora import save_adapter

        ctx = self.ctx
        adapter_dir = ctx.workdir / "adapter"
        saved = save_adapter(self.model, adapter_dir)
        entry = AdapterEntry(name=f"{ctx.kind}-{skill}-{ctx.job_id[:8]}", role=ctx.kind, skill=skill, sha256=saved.sha256)
        bundle = new_version_bundle(
            ctx.workdir / "bundle",
            parent=self.parent,
            parent_bundle=self.parent_bundle,
            kernel=self.parent.kernel,
            base=self.parent.base,
            new_adapter=(entry, adapter_dir),
            retained=retained,
            retired=retired,
            parent_version=self.parent_kv.version,
            job_id=ctx.job_id,
            policy_sha256=policy_sha256,
            data_digests=self.digests,
        )
        summary = report.summary()
        return ctx.register_candidate(
            bundle, report, description=f"{description}. {summary}", parent=self.parent_kv,
            extra_tags={"kernel.target": json.dumps(self.target, sort_keys=True)[:4900]},
        )


@contextlib.contextmanager
def child_job(
    config, skills: dict[str, Skill], *, actor: str, trigger_id: str | None, progress: bool,  # noqa: ANN001
) -> Iterator[ChildJob]:
    """Resolve the parent (once), open the job (DB row + MLflow run), log params and data, load
    the kernel and attach a fresh LoRA adapter named after the job's kind, with the config's
    rank and alpha."""
    from kernel_lifecycle.jobs.runner import job_run
    from kernel_lifecycle.models.loading import load_kernel
    from kernel_lifecycle.registry import client as registry
    from kernel_lifecycle.training.lora import attach_lora

    kind = config.kind
    parent_kv = registry.resolve(config.from_ref or config.kernel)
    parent_bundle = registry.fetch_bundle(parent_kv)
    params = config_params(config)
    with job_run(kind, config.kernel, params, actor=actor, trigger_id=trigger_id) as ctx, progress_bar(progress) as bar:
        ctx.log_params({**params, "parent_version": parent_kv.version, "harness": config.harness.model_dump()})
        digests = log_data_inputs(ctx, skills)
        loaded = load_kernel(parent_bundle)
        placement = localized_placement(loaded.model, loaded.tokenizer, config, skills, ctx) if getattr(config, "target", "all") == "localized" else None
        model = attach_lora(
            loaded.model, adapter_name=kind, r=config.rank, alpha=config.lora_alpha, seed=config.seed,
            **(placement.attach_kwargs() if placement is not None else {}),
        )
        yield ChildJob(
            ctx=ctx, bar=bar, parent_kv=parent_kv, parent_bundle=parent_bundle, parent=loaded.manifest,
            tokenizer=loaded.tokenizer, model=model, digests=digests,
            target=placement.describe() if placement is not None else {"target": getattr(config, "target", "all")},
        )


def localized_placement(model, tokenizer, config, skills: dict[str, Skill], ctx):  # noqa: ANN001, ANN201
    """Map where the retired skill and the retained ones live (attention heads, on the selection
    split), log the maps to the job's run, and place the LoRA on the retired skill's own heads."""
    from kernel_lifecycle.boundary import localize

    names = [config.skill, *config.retain]
    maps = localize.map_skills(model, tokenizer, {n: skills[n] for n in names}, k=config.target_heads, split=config.harness.selection_split)
    for path in localize.write_maps(maps, config.skill, ctx.workdir / "localize"):
        ctx.log_artifact(path, "localize")
    placement = localize.lora_targets(model, maps[config.skill], [maps[n] for n in config.retain], k=config.target_heads)
    ctx.log_params({"target.placement": placement.describe()})
    return placement


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Any]:
    """A rich progress display for long work (steps, evaluation), or None when disabled."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kernel_lifecycle.cli.output import err_console

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as progress:
        yield progress
