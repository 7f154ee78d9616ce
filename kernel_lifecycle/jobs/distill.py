"""distill: create a kernel from a larger teacher on its task's data (KL to the teacher + CE).

Top to bottom:
1. open the job (``context.open_job``) with the teacher (any base spec: a local directory, a
   hub id, ...) as its model;
2. build the student from the teacher by keeping an evenly spaced subset of its layers
   (DistilBERT-style initialisation: the student starts with the teacher's knowledge in a
   smaller network instead of from noise, which is what makes a few hundred CPU steps enough);
3. train every student weight on the task's train probes with
   ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE``, on solution tokens only;
4. save the student (safetensors) as the kernel's base, log it to the job's run, measure it with
   the full harness, and register it as the kernel's first version (no adapters yet).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from kernel_lifecycle.boundary.skills import Skill
from kernel_lifecycle.display import SILENT, Display
from kernel_lifecycle.errors import JobError
from kernel_lifecycle.jobs import common
from kernel_lifecycle.jobs.config import DistillConfig
from kernel_lifecycle.jobs.context import open_job
from kernel_lifecycle.models.bases import resolve_base
from kernel_lifecycle.models.loading import base_sha256, check_weights
from kernel_lifecycle.policy.schema import Policy
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.registry.bundle import BaseModelRef
from kernel_lifecycle.training.data import IGNORE_INDEX, batches, pad_id_of
from kernel_lifecycle.training.loop import train
from kernel_lifecycle.training.losses import next_token_targets

if TYPE_CHECKING:
    from transformers import PreTrainedModel

BASE_ARTIFACT = "base"


def policy_fields(policy: Policy) -> dict[str, Any]:
    """A policy has no distill plan: a distill reads its skills and measurement only (``from_policy``)."""
    return {}


def check_world(spec: DistillConfig) -> dict[str, Skill]:
    """What the config cannot check alone: skills with data, a safetensors teacher, a new kernel."""
    skills = common.skills_named(spec.skills)
    for skill in skills.values():
        common.require_train_data(skill)
    check_weights(resolve_base(spec.teacher).path)  # a missing or pickled teacher fails here
    common.require_new_kernel(spec.kernel, kind="distill")
    return skills


_LAYER = re.compile(r"^(?P<prefix>.*?\.(?:layers|h))\.(?P<index>\d+)\.(?P<rest>.*)$")


def student_from_teacher(teacher: PreTrainedModel, n_layers: int) -> PreTrainedModel:
    """A smaller copy of ``teacher`` holding ``n_layers`` evenly spaced layers (first and last kept)."""
    import torch
    from transformers import AutoModelForCausalLM

    config = teacher.config.to_dict()
    total = teacher.config.num_hidden_layers
    if not 1 <= n_layers <= total:
        raise JobError(f"student_layers must be between 1 and the teacher's {total}, got {n_layers}")
    keep = sorted({round(i * (total - 1) / max(n_layers - 1, 1)) for i in range(n_layers)})
    config["num_hidden_layers"] = len(keep)
    for key in ("layer_types",):  # per-layer lists must shrink with the layers
        if isinstance(config.get(key), list):
            config[key] = [config[key][i] for i in keep]
    student_config = type(teacher.config).from_dict(config)
    student = AutoModelForCausalLM.from_config(student_config)
    mapping = {old: new for new, old in enumerate(keep)}
    state = {}
    for name, tensor in teacher.state_dict().items():
        match = _LAYER.match(name)
        if match is None:
            state[name] = tensor
        elif int(match["index"]) in mapping:
            state[f"{match['prefix']}.{mapping[int(match['index'])]}.{match['rest']}"] = tensor
    missing, unexpected = student.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if not m.endswith("lm_head.weight")]:
        raise JobError(f"cannot map the teacher's layers onto a student: missing {missing[:3]}, unexpected {unexpected[:3]}")
    student.tie_weights()
    return student.to(dtype=torch.float32)


def kd_loss(teacher: PreTrainedModel, temperature: float, alpha: float):  # noqa: ANN201 - a training loss function
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE, over solution tokens."""
    import torch
    import torch.nn.functional as F

    def loss_fn(student, batch):  # noqa: ANN001, ANN202
        logits = student(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float()
        with torch.no_grad():
            teacher_logits = teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float()
        targets = next_token_targets(batch.labels)
        mask = targets != IGNORE_INDEX
        ce = F.cross_entropy(logits[mask], targets[mask])
        kl = F.kl_div(
            F.log_softmax(logits[mask] / temperature, dim=-1),
            F.log_softmax(teacher_logits[mask] / temperature, dim=-1),
            log_target=True,
            reduction="batchmean",
        ) * temperature**2
        return alpha * kl + (1 - alpha) * ce, {"kl": kl.detach(), "ce": ce.detach()}

    return loss_fn


def run(spec: DistillConfig, *, actor: str, trigger_id: str | None = None, display: Display = SILENT) -> registry.KernelVersion:
    from transformers import AutoConfig

    skills = check_world(spec)
    teacher_uri = spec.teacher
    if spec.student_layers is None:  # resolved before the job opens, so its params say what ran
        layers = AutoConfig.from_pretrained(resolve_base(teacher_uri).path, trust_remote_code=False).num_hidden_layers
        spec = spec.model_copy(update={"student_layers": max(1, layers // 2)})
    n_layers = int(spec.student_layers)

    with open_job(spec, skills, actor=actor, trigger_id=trigger_id, display=display, base=teacher_uri) as job:
        ctx, teacher, tokenizer, bar = job.ctx, job.model, job.tokenizer, job.bar
        job.digests["teacher"] = job.base.sha256  # type: ignore[union-attr] - a job opened on a base records it

        student = student_from_teacher(teacher, n_layers)
        stream = batches(common.encode_skills(skills, tokenizer), batch_size=spec.batch_size, seed=spec.seed, pad_id=pad_id_of(tokenizer))
        curves = common.Curves(
            ctx.run_id, tokenizer, skills, roles={name: "learn" for name in skills}, max_problems=spec.eval_problems,
            max_new_tokens=spec.harness.max_new_tokens, split=spec.harness.selection_split, seed=spec.seed,
        )

        with ctx.step_metric("train.loss") as on_step:
            result = train(
                student, stream, loss_fn=kd_loss(teacher, spec.temperature, spec.kl_weight), steps=spec.steps,
                lr=spec.lr, seed=spec.seed, checkpoint_every=spec.eval_every, on_checkpoint=curves,
                on_step=on_step, progress=bar,
            )
        ctx.log_metric("train.tokens_per_second", result.tokens_per_second)
        job.model = student  # the teacher's memory goes before the final measurement
        del teacher
        curves.plot(ctx, retired=[], retained=list(skills), thresholds=spec.thresholds, chosen_step=spec.steps,
                    title=f"distillation of {spec.kernel}: the student learns its skills")

        ctx.state("evaluating", f"{spec.steps} distillation steps done")
        student.eval()
        report = common.final_report(student, tokenizer, spec, skills=skills, trained_on=skills, progress=bar)
        base_dir = ctx.workdir / BASE_ARTIFACT
        student.save_pretrained(base_dir, safe_serialization=True)
        tokenizer.save_pretrained(base_dir)
        ctx.log_artifact_dir(base_dir, BASE_ARTIFACT)
        return job.register(
            report, skill=None, retained=list(spec.skills), retired=[], policy_sha256=spec.policy_sha256,
            base=BaseModelRef(uri=f"runs:/{ctx.run_id}/{BASE_ARTIFACT}", sha256=base_sha256(base_dir)),
            description=f"distilled from {teacher_uri} on {', '.join(spec.skills)} ({n_layers}-layer student)",
        )
