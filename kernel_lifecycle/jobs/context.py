"""The one job context every recipe opens and closes.

``open_job`` opens a job: the parent version it changes (upskill, downskill: ``from_ref`` or
the champion) or the base it starts from (adapt's base, distill's teacher), the job's run record
(lifecycle-DB row + MLflow run, ``runner.job_run``), its params and data inputs, the progress
display, the model, and a fresh LoRA adapter on it when the job trains one (its config has a
``rank``). ``Job.register`` closes it: the parent's adapters (if any) and the job's own written
as a bundle with its lineage, registered as the candidate. Any exception in between marks the
job failed (``job_run``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel_lifecycle.boundary import localize
from kernel_lifecycle.boundary.report import BoundaryReport
from kernel_lifecycle.boundary.skills import Skill
from kernel_lifecycle.display import SILENT, Display, ProgressLike
from kernel_lifecycle.jobs import common
from kernel_lifecycle.jobs.common import config_params, log_data_inputs, new_version_bundle
from kernel_lifecycle.jobs.runner import JobContext, job_run
from kernel_lifecycle.models.bases import resolve_base
from kernel_lifecycle.models.loading import base_ref, load_base, load_kernel
from kernel_lifecycle.models.prompting import format_of
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.registry.bases import publish_base
from kernel_lifecycle.registry.bundle import AdapterEntry, BaseModelRef, Manifest
from kernel_lifecycle.training.lora import attach_lora, save_adapter
from kernel_lifecycle.training.loop import train
from kernel_lifecycle.training.losses import ce_loss

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class Job:
    """An open job: its run record, its progress bar, the model it changes and where that came from."""

    ctx: JobContext
    bar: ProgressLike | None
    model: PreTrainedModel  # with an adapter: a PeftModel whose active adapter is the job's own; distill: the teacher
    tokenizer: PreTrainedTokenizerBase
    digests: dict[str, str]  # dataset name -> sha256: the version's data lineage
    adapter: bool = False  # the job trains a LoRA adapter (saved into the bundle at register)
    base: BaseModelRef | None = None  # the base a first version stands on (adapt), as resolved at open
    base_dir: Path | None = None  # where that base's files are here (published to the store at register)
    parent_kv: registry.KernelVersion | None = None
    parent_bundle: Path | None = None
    parent: Manifest | None = None
    target: dict[str, Any] = field(default_factory=dict)  # where the adapter sits (lineage: kernel.target)

    def teach(self, spec: Any, stream: Iterator, skills: dict[str, Skill], *, roles: dict[str, str], title: str) -> BoundaryReport:
        """Train the job's adapter with plain CE on ``stream`` for ``spec.steps``, measuring
        ``skills`` on the selection split at step 0 (the model before any step) and every
        ``eval_every`` steps (their curves plotted under ``title``), then measure the final model
        with the full harness: what adapt and upskill do between opening and registering."""
        ctx, model, tokenizer = self.ctx, self.model, self.tokenizer
        curves = common.Curves(
            ctx.run_id, tokenizer, skills, roles=roles, max_problems=spec.eval_problems,
            max_new_tokens=spec.harness.max_new_tokens, split=spec.harness.selection_split, seed=spec.seed,
        )
        curves(0, model)
        with ctx.step_metric("train.loss") as on_step:
            result = train(
                model, stream, loss_fn=ce_loss, steps=spec.steps, lr=spec.lr, seed=spec.seed,
                checkpoint_every=spec.eval_every, on_checkpoint=curves, on_step=on_step, progress=self.bar,
            )
        ctx.log_metric("train.tokens_per_second", result.tokens_per_second)
        curves.plot(ctx, retired=[], retained=list(skills), thresholds=spec.thresholds, chosen_step=spec.steps, title=title)
        ctx.state("evaluating", f"{spec.steps} steps done")
        model.eval()
        return common.final_report(model, tokenizer, spec, skills=skills, trained_on=skills, progress=self.bar)

    def register(
        self, report: BoundaryReport, *, skill: str | None, retained: list[str], retired: list[str],
        policy_sha256: str | None, description: str, base: BaseModelRef | None = None,
    ) -> registry.KernelVersion:
        """Close the job: save its adapter (if it trains one), write the parent's adapters + it
        (a first version: its base's reference, ``base`` or the one opened) with the lineage
        fields, and register the bundle as the candidate (``JobContext.register_candidate``:
        report first, one DB transaction)."""
        ctx = self.ctx
        new_adapter = None
        if self.adapter:
            adapter_dir = ctx.workdir / "adapter"
            saved = save_adapter(self.model, adapter_dir)
            entry = AdapterEntry(name=f"{ctx.kind}-{skill}-{ctx.job_id[:8]}", role=ctx.kind, skill=skill or ctx.kind, sha256=saved.sha256)
            new_adapter = (entry, adapter_dir)
        base_ref = base or self.base or (self.parent.base if self.parent is not None else None)
        if base_ref is None:
            raise ValueError("a job without a parent version registers a new base: pass base=")
        if base_ref is self.base and base_ref.kind in ("dir", "gguf") and self.base_dir is not None:
            # a base only this machine resolves: its weights go to the store once, so the version
            # loads anywhere the store is reachable (mlflow.pyfunc.load_model included)
            uri = publish_base(self.base_dir, sha256=base_ref.sha256, spec=base_ref.uri)
            base_ref = base_ref.model_copy(update={"artifact_uri": uri})
            ctx.log_params({"base.artifact_uri": uri})
        bundle = new_version_bundle(
            ctx.workdir / "bundle",
            parent=self.parent,
            parent_bundle=self.parent_bundle,
            kernel=self.parent.kernel if self.parent is not None else ctx.kernel,
            base=base_ref,
            new_adapter=new_adapter,
            retained=retained,
            retired=retired,
            parent_version=self.parent_kv.version if self.parent_kv is not None else None,
            job_id=ctx.job_id,
            policy_sha256=policy_sha256,
            data_digests=self.digests,
            prompt_format=format_of(self.tokenizer).model_dump(mode="json"),
        )
        extra = {"kernel.target": json.dumps(self.target, sort_keys=True)[:4900]} if self.target else None
        return ctx.register_candidate(
            bundle, report, description=f"{description}. {report.summary()}", parent=self.parent_kv, extra_tags=extra,
        )


@contextlib.contextmanager
def open_job(
    config: Any, skills: dict[str, Skill], *, actor: str, trigger_id: str | None, display: Display = SILENT,
    base: str | None = None,
) -> Iterator[Job]:
    """Open a job of ``config.kind`` on ``skills`` (its data inputs).

    ``base`` (a base spec): a first version's model (adapt's base, distill's teacher); without
    it the parent version is resolved (``from_ref``, default the champion) and loaded, base +
    adapters merged. A job whose config has a ``rank`` gets a fresh LoRA adapter named after
    its kind, with the config's rank and alpha (on a parent: placed on the retired skill's own
    heads when ``target`` is ``localized``).
    """
    kind = config.kind
    parent_kv = registry.resolve(config.from_ref or config.kernel) if base is None else None
    parent_bundle = registry.fetch_bundle(parent_kv) if parent_kv is not None else None
    params = config_params(config)
    with job_run(kind, config.kernel, params, actor=actor, trigger_id=trigger_id) as ctx, display.progress() as bar:
        source = {"parent_version": parent_kv.version} if parent_kv is not None else {}  # a base is in the config
        ctx.log_params({**params, **source, "harness": config.harness.model_dump()})
        digests = log_data_inputs(ctx, skills)
        manifest, base_ref_, base_dir, placement = None, None, None, None
        if parent_bundle is not None:
            loaded = load_kernel(parent_bundle)
            model, tokenizer, manifest = loaded.model, loaded.tokenizer, loaded.manifest
            if getattr(config, "target", "all") == "localized":
                placement = localized_placement(model, tokenizer, config, skills, ctx)
        else:
            resolved = resolve_base(base)
            model, tokenizer = load_base(resolved)
            base_ref_, base_dir = base_ref(resolved), resolved.path
            digests[f"base:{base}"] = base_ref_.sha256
        adapter = hasattr(config, "rank")
        if adapter:
            model = attach_lora(
                model, adapter_name=kind, r=config.rank, alpha=config.lora_alpha, seed=config.seed,
                **(placement.attach_kwargs() if placement is not None else {}),
            )
        else:
            model.eval()
        yield Job(
            ctx=ctx, bar=bar, model=model, tokenizer=tokenizer, digests=digests, adapter=adapter, base=base_ref_, base_dir=base_dir,
            parent_kv=parent_kv, parent_bundle=parent_bundle, parent=manifest,
            target=({"target": getattr(config, "target", "all")} if placement is None else placement.describe()) if parent_kv else {},
        )


def localized_placement(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: Any, skills: dict[str, Skill], ctx: JobContext) -> localize.LoraPlacement:
    """Map where the retired skill and the retained ones live (attention heads, on the selection
    split), log the maps to the job's run, and place the LoRA on the retired skill's own heads."""
    names = [config.skill, *config.retain]
    maps = localize.map_skills(model, tokenizer, {n: skills[n] for n in names}, k=config.target_heads, split=config.harness.selection_split)
    for path in localize.write_maps(maps, config.skill, ctx.workdir / "localize"):
        ctx.log_artifact(path, "localize")
    placement = localize.lora_targets(model, maps[config.skill], [maps[n] for n in config.retain], k=config.target_heads)
    ctx.log_params({"target.placement": placement.describe()})
    return placement
