"""adapt: a kernel's first version from a pretrained base, the base unchanged plus one LoRA adapter.

Where distill makes a smaller model from a teacher, adapt keeps a pretrained model whole and
narrows it to the kernel's task with an adapter, the way platform teams bring their own models.

Top to bottom:
1. check the skills have data to train on (before anything is loaded);
2. open the job (``context.open_job``): the base from its spec (a local directory, a hub id, a
   GGUF file, ``smollm2``), its bytes recorded, with a fresh LoRA adapter attached;
3. train the adapter with CE on the task's train probes; every ``eval_every`` steps measure each
   skill on the selection split (step 0 is the base itself: what the adapter adds is on record);
4. measure the final model with the full harness (gate split, fresh, all checks);
5. close the job: the base's reference + the adapter, registered as the kernel's first version.
"""

from __future__ import annotations

from typing import Any

from kernel_lifecycle.display import SILENT, Display
from kernel_lifecycle.jobs import common
from kernel_lifecycle.jobs.config import AdaptConfig
from kernel_lifecycle.jobs.context import open_job
from kernel_lifecycle.policy.schema import Policy
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.training.data import batches, pad_id_of


def policy_fields(policy: Policy) -> dict[str, Any]:
    """A policy has no adapt plan: an adapt reads its skills and measurement only (``from_policy``)."""
    return {}


def run(spec: AdaptConfig, *, actor: str, trigger_id: str | None = None, display: Display = SILENT) -> registry.KernelVersion:
    skills = common.skills_named(spec.skills)
    for skill in skills.values():
        common.require_train_data(skill)
    common.require_new_kernel(spec.kernel, kind="adapt")

    with open_job(spec, skills, actor=actor, trigger_id=trigger_id, display=display, base=spec.base) as job:
        stream = batches(common.encode_skills(skills, job.tokenizer), batch_size=spec.batch_size, seed=spec.seed,
                         pad_id=pad_id_of(job.tokenizer))
        # step 0 is the base itself (a fresh LoRA adapter is a no-op)
        report = job.teach(spec, stream, skills, roles={name: "learn" for name in skills},
                           title=f"adapt of {spec.kernel}: the adapter narrows the base to its task")
        return job.register(
            report, skill="-".join(spec.skills), retained=list(spec.skills), retired=[], policy_sha256=spec.policy_sha256,
            description=f"adapted {spec.base} to {', '.join(spec.skills)} with a rank-{spec.rank} LoRA adapter",
        )
