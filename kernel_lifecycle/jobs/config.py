"""One typed config per job kind, and what every kind reads of a policy.

``recipes.from_policy(kind, policy, policy_sha256, **overrides)`` builds a config: the policy's
thresholds, harness and skills (``policy_base_fields``), the recipe's own plan fields, then the
caller's overrides (``None`` means "keep the plan's"). A config is
validated as it is built (ranges, the unlearning method and its options), so a recipe checks
only what needs the world (skills on disk, a parent version). Configs are plain JSON-able
pydantic models: they are logged as the job's params and can cross a process boundary.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kernel_lifecycle.boundary.checks import CheckSettings
from kernel_lifecycle.boundary.report import HarnessConfig
from kernel_lifecycle.policy.schema import Policy
from kernel_lifecycle.unlearning import check_method, method_class, option_problems

DEFAULT_CEILING = 0.05  # ceiling and allowed drop of a skill the policy does not name


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Thresholds(_Model):
    """What the boundary means for one job: floors of retained skills, ceilings of retired ones."""

    floors: dict[str, float] = Field(default_factory=dict)  # retained skill -> min value
    ceilings: dict[str, float] = Field(default_factory=dict)  # retired skill -> max upper bound
    tolerance: dict[str, float] = Field(default_factory=dict)  # retained skill -> allowed drop

    def ceiling(self, skill: str) -> float:
        return self.ceilings.get(skill, DEFAULT_CEILING)

    def allowed_drop(self, skill: str) -> float:
        return self.tolerance.get(skill, DEFAULT_CEILING)

    def as_roles(self) -> dict[str, tuple[str, float]]:
        roles = {name: ("retained", value) for name, value in self.floors.items()}
        roles.update({name: ("retired", value) for name, value in self.ceilings.items()})
        return roles


def _harness() -> HarnessConfig:
    return HarnessConfig(max_new_tokens=160)


class _Job(_Model):
    """What every job kind takes: the kernel, the measurement, and where its numbers go."""

    kernel: str
    seed: int = 0
    eval_every: int = Field(gt=0)
    eval_problems: int = Field(gt=0, description="per skill per checkpoint, from the selection split")
    thresholds: Thresholds = Field(default_factory=Thresholds)
    harness: HarnessConfig = Field(default_factory=_harness)
    checks: CheckSettings = Field(default_factory=CheckSettings)
    policy_sha256: str | None = None
    # skills the final report measures besides the job's own; the policy's full list keeps
    # every version's harness hash comparable, so gates need not re-evaluate the champion
    report_skills: list[str] = Field(default_factory=list)
    # skill name -> skill pack folder, from the policy (``skills.dir``, ``skills.*.pack``); the
    # recipe reads these skills there (boundary.skills.skill_sources), the rest as before
    skill_sources: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _roles_apart(self):  # noqa: ANN202
        if self.harness.split == self.harness.selection_split:
            raise ValueError(
                f"the gate split and the selection split are both {self.harness.split!r}: a job chooses its checkpoint "
                "on the selection split and the gate decides on the gate split, so they must differ"
            )
        return self


class _LoraJob(_Job):
    """A job that stacks one new LoRA adapter on a registered parent version."""

    from_ref: str | None = Field(default=None, description="NAME@VERSION|alias; default: the champion")
    rank: int = Field(default=8, gt=0, le=256)
    alpha: float | None = Field(default=None, gt=0.0, description="LoRA alpha; default 2 x rank")
    batch_size: int = Field(default=8, gt=0)

    @property
    def lora_alpha(self) -> float:
        return self.alpha if self.alpha is not None else 2.0 * self.rank


class DistillConfig(_Job):
    kind: Literal["distill"] = "distill"
    skills: list[str] = Field(min_length=1, description="the task's skills: the kernel's data")
    teacher: str = Field(default="demo", description="a base spec: a local dir, a hub id, a .gguf file, smollm2, demo")
    student_layers: int | None = Field(default=None, gt=0, description="None: half the teacher's layers")
    steps: int = Field(default=150, gt=0)
    lr: float = Field(default=1e-3, gt=0.0, lt=1.0)
    batch_size: int = Field(default=16, gt=0)
    temperature: float = Field(default=2.0, gt=0.0)
    kl_weight: float = Field(default=0.5, ge=0.0, le=1.0, description="weight of the KL term against CE")
    eval_every: int = Field(default=50, gt=0)
    eval_problems: int = Field(default=32, gt=0)


class AdaptConfig(_Job):
    """A kernel's first version from a pretrained base: the base unchanged plus one LoRA adapter."""

    kind: Literal["adapt"] = "adapt"
    base: str = Field(description="a base spec: a local model directory, a hub id, a .gguf file, 'smollm2'")
    skills: list[str] = Field(min_length=1, description="the task's skills: the adapter's data")
    rank: int = Field(default=8, gt=0, le=256)
    alpha: float | None = Field(default=None, gt=0.0, description="LoRA alpha; default 2 x rank")
    batch_size: int = Field(default=8, gt=0)
    steps: int = Field(default=40, gt=0)
    lr: float = Field(default=1e-3, gt=0.0, lt=1.0)
    eval_every: int = Field(default=20, gt=0)
    eval_problems: int = Field(default=16, gt=0)

    @property
    def lora_alpha(self) -> float:
        return self.alpha if self.alpha is not None else 2.0 * self.rank


class UpskillConfig(_LoraJob):
    kind: Literal["upskill"] = "upskill"
    skill: str = Field(description="the new technology")
    replay: list[str] = Field(default_factory=list, description="retained skills replayed during training")
    replay_ratio: float = Field(default=0.25, ge=0.0, lt=1.0)
    steps: int = Field(default=80, gt=0)
    lr: float = Field(default=3e-3, gt=0.0, lt=1.0)
    eval_every: int = Field(default=20, gt=0)
    eval_problems: int = Field(default=48, gt=0)

    @model_validator(mode="after")
    def _replay_not_learned(self) -> "UpskillConfig":
        if self.skill in self.replay:
            raise ValueError(f"skill {self.skill!r} is the one being learned; do not list it as replay")
        return self


class DownskillConfig(_LoraJob):
    kind: Literal["downskill"] = "downskill"
    skill: str = Field(description="the skill to retire")
    retain: list[str] = Field(default_factory=list, description="skills that must stay")
    method: str = "npo"
    method_options: dict[str, Any] = Field(default_factory=dict)
    # where the LoRA goes: every layer ("all"), or only the attention heads where the retired
    # skill lives and no retained skill does ("localized", boundary.localize)
    target: Literal["all", "localized"] = "all"
    target_heads: int = Field(default=3, gt=0, description="heads a localized adapter may change")
    steps: int = Field(default=60, gt=0)
    lr: float = Field(default=2e-3, gt=0.0, lt=1.0)
    eval_every: int = Field(default=10, gt=0)
    eval_problems: int = Field(default=64, gt=0)
    # the relearning check's budget: a short fine-tune on the skill's relearn split
    relearn_steps: int = Field(default=8, gt=0)
    relearn_examples: int = Field(default=32, gt=0)
    relearn_lr: float = Field(default=2e-3, gt=0.0, lt=1.0)
    relearn_problems: int | None = Field(default=60, gt=0, description="gate-split problems measured per relearning step")
    # what the relearning curve is compared with (boundary.reference) and the allowed area excess
    relearn_reference: str = Field(default="auto", pattern=r"^(auto|base|retrain|none|[0-9]+)$")
    relearn_tolerance: float = Field(default=0.10, ge=0.0, le=1.0)
    # the membership signal (boundary.membership): probes per side, Min-K%'s k, the gated gap (None: reported only)
    membership_probes: int = Field(default=64, gt=0)
    membership_k: float = Field(default=0.2, gt=0.0, le=1.0)
    membership_max_gap: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _method_and_skills(self) -> "DownskillConfig":
        check_method(self.method)
        problems = option_problems(self.method, self.method_options)
        if problems:
            raise ValueError("; ".join(msg for _, msg in problems))
        if self.skill in self.retain:
            raise ValueError(f"skill {self.skill!r} cannot be both retired and retained")
        if method_class(self.method).needs_retain and not self.retain:
            raise ValueError(f"method {self.method!r} has a retain loss: name the skills to retain")
        return self


# ---- from a policy --------------------------------------------------------------------------


def harness_of(policy: Policy) -> HarnessConfig:
    h = policy.gate.harness
    return HarnessConfig(
        max_new_tokens=h.max_new_tokens,
        n_samples=h.n_samples,
        k=h.k,
        split=h.split,
        selection_split=h.selection_split,
        max_problems=h.max_problems,
        temperature=0.0 if h.n_samples == 1 else 0.8,
    )


def thresholds_of(policy: Policy) -> Thresholds:
    return Thresholds(
        floors={s.name: s.floor for s in policy.skills.retained},
        ceilings={s.name: s.ceiling for s in policy.skills.retired},
        tolerance={s.name: policy.tolerance_for(s) for s in policy.skills.retained},
    )


def policy_skills(policy: Policy) -> list[str]:
    return sorted({s.name for s in policy.skills.retained} | {s.name for s in policy.skills.retired})


def plan_hyperparameters(plan: Any) -> dict[str, Any]:
    """The hyperparameters every LoRA plan of a policy carries (``plans.upskill|downskill``)."""
    hp = plan.hyperparameters
    return {
        "steps": hp.steps, "lr": hp.lr, "rank": hp.rank, "alpha": hp.alpha,
        "batch_size": hp.batch_size, "eval_every": hp.eval_every,
    }


def policy_base_fields(policy: Policy, policy_sha256: str | None) -> dict[str, Any]:
    """What every job reads of its kernel's policy: thresholds, harness, checks and skills."""
    return {
        "kernel": policy.kernel, "thresholds": thresholds_of(policy), "harness": harness_of(policy),
        "checks": CheckSettings.of_policy(policy), "policy_sha256": policy_sha256, "report_skills": policy_skills(policy),
        "skill_sources": {name: str(path) for name, path in policy.skills.sources().items()},
    }
