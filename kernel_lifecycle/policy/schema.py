"""The policy schema: which skills a kernel keeps and loses, how it changes, when, and who decides.

Every model refuses unknown keys (``extra="forbid"``): a typo in a policy is an error, never a
silently ignored setting. Field-level rules (ranges, cron syntax, time zones) live on the
models; rules that relate fields to each other or to the world (known skills and scorers,
today's date, plans naming declared skills) live in :func:`cross_check`, which returns every
problem with its location so the loader can point at the YAML line.

The world a policy is checked against is a :class:`PolicyContext` (today, known skills, known
scorers, unlearning methods). Pass it as pydantic validation context (``{"policy": ctx}``); tests
inject their own ``today`` and skills.

Date rules (a retained skill past its sunset) belong to ``policies validate``/``apply`` and to
the scheduler. A stored policy snapshot is read with ``PolicyContext.stored()``, which applies no
date rule: on the day a sunset passes, gates, promotions and jobs keep working and the overdue
sunset is reported (``Policy.overdue_sunsets``) instead of refusing to read the policy.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from kernel_lifecycle.boundary.scorers import scorer_names
from kernel_lifecycle.boundary.skillpack import PackProblem, pack_problems
from kernel_lifecycle.boundary.skills import demo_skills, load_skill
from kernel_lifecycle.unlearning import METHODS, method_class, option_problems

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

Loc = tuple[Union[str, int], ...]

SKILL_NAME = r"^[a-z][a-z0-9_]*$"
KERNEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
CHECKS = ("truncation", "generalization", "scorer_parity", "contamination", "relearning", "retain_only", "membership")
CheckName = Literal["truncation", "generalization", "scorer_parity", "contamination", "relearning", "retain_only", "membership"]
# a check's former name, as stored policy snapshots may still write it
_RENAMED_CHECKS = {"fresh_dev_agreement": "generalization"}
PlanName = Literal["upskill", "downskill"]

# A cron expression that does not fire within this horizon is treated as never firing.
CRON_HORIZON_YEARS = 5


# ---- the world a policy is checked against -----------------------------------------------------


def _known_methods() -> tuple[str, ...]:
    return METHODS


def _known_scorers() -> frozenset[str]:
    return frozenset(scorer_names())


def _known_skills() -> dict[str, str]:
    return {name: skill.scorer for name, skill in demo_skills().items()}


@dataclass(frozen=True)
class PolicyContext:
    """What a policy is validated against. Build with :meth:`default` and override for tests."""

    today: date | None  # None: no date rules (a stored snapshot, see the module docstring)
    skills: Mapping[str, str]  # known skill name -> its scorer
    scorers: frozenset[str]
    methods: tuple[str, ...]

    @classmethod
    def default(
        cls,
        *,
        today: date | None = None,
        skills: Mapping[str, str] | None = None,
        scorers: Iterable[str] | None = None,
        methods: Iterable[str] | None = None,
    ) -> "PolicyContext":
        return cls(
            today=today or datetime.now(timezone.utc).date(),
            skills=dict(skills) if skills is not None else _known_skills(),
            scorers=frozenset(scorers) if scorers is not None else _known_scorers(),
            methods=tuple(methods) if methods is not None else _known_methods(),
        )

    @classmethod
    def stored(cls) -> "PolicyContext":
        """For reading a policy that was validated when it was applied: no date rules."""
        return cls(today=None, skills=_known_skills(), scorers=_known_scorers(), methods=_known_methods())


def _context(info: ValidationInfo) -> PolicyContext | None:
    ctx = info.context or {}
    value = ctx.get("policy") if isinstance(ctx, dict) else None
    return value if isinstance(value, PolicyContext) else None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- skills ------------------------------------------------------------------------------------


class RetainedSkill(_Model):
    """A skill the kernel must keep: a floor on its metric and a tolerance against the champion."""

    name: str = Field(pattern=SKILL_NAME)
    floor: float = Field(ge=0.0, le=1.0, description="minimum metric value (point estimate)")
    tolerance: float | None = Field(
        default=None, ge=0.0, le=1.0, description="max drop vs champion; default gate.tolerance"
    )
    scorer: str | None = Field(default=None, description="declare a skill the registry does not know")
    sunset: date | None = Field(
        default=None, description="retained only until this date; after it the policy must retire it"
    )
    pack: str | None = Field(default=None, description="the skill pack folder this skill is read from")


class RetiredSkill(_Model):
    """A skill the kernel must lose: the interval's upper bound must stay under the ceiling."""

    name: str = Field(pattern=SKILL_NAME)
    ceiling: float = Field(ge=0.0, le=1.0, description="max metric value, compared with ci_high")
    sunset: date = Field(description="the date by which the skill must be gone")
    scorer: str | None = None
    pack: str | None = Field(default=None, description="the skill pack folder this skill is read from")


class Skills(_Model):
    retained: list[RetainedSkill] = Field(default_factory=list)
    retired: list[RetiredSkill] = Field(default_factory=list)
    # where this kernel's skills come from: a folder of skill packs (``<name>/skill.json`` ...),
    # and/or a ``pack`` per skill (which wins); neither: KL_SKILLS_DIR, else the demo skills.
    # Relative paths are read from the directory the command runs in: write absolute ones for
    # a scheduler service.
    dir: str | None = Field(default=None, description="a folder of skill packs, one subfolder per skill")

    def sources(self) -> dict[str, Path]:
        """Skill name -> pack folder, for every skill this policy reads from its own packs (the
        policy's skills and any other skill of ``dir``)."""
        out: dict[str, Path] = {}
        if self.dir is not None:
            root = Path(self.dir).expanduser()
            if root.is_dir():
                out |= {p.name: p.resolve() for p in sorted(root.iterdir()) if (p / "skill.json").is_file()}
        out |= {s.name: Path(s.pack).expanduser().resolve() for s in (*self.retained, *self.retired) if s.pack}
        return out


# ---- plans -------------------------------------------------------------------------------------


class LoraHyperparameters(_Model):
    steps: int = Field(default=80, gt=0)
    lr: float = Field(default=3e-3, gt=0.0, lt=1.0)
    rank: int = Field(default=8, gt=0, le=256)
    alpha: float | None = Field(default=None, gt=0.0, description="LoRA alpha; default 2 x rank")
    batch_size: int = Field(default=8, gt=0)
    eval_every: int = Field(default=20, gt=0)

    @property
    def lora_alpha(self) -> float:
        return self.alpha if self.alpha is not None else 2.0 * self.rank


class Resources(_Model):
    """What a plan's job declares to the executor: under KL_EXECUTOR=ray, Ray places it on a
    node with these free (GPUs come from the cluster's nodes); locally they are not used."""

    num_cpus: float = Field(default=1.0, ge=0.0)
    num_gpus: float = Field(default=0.0, ge=0.0)


class Replay(_Model):
    skills: list[str] = Field(default_factory=list)
    ratio: float = Field(default=0.25, ge=0.0, lt=1.0, description="share of each batch from replay")


class TrainingData(_Model):
    skill: str | None = Field(default=None, description="default: the plan's skill")
    split: str = "train"

    @field_validator("split")
    @classmethod
    def _train_only(cls, value: str) -> str:
        if value != "train":
            raise ValueError(
                f"training data must come from the 'train' split, not {value!r}: dev and fresh "
                "probes measure the kernel and must stay unseen"
            )
        return value


class UpskillPlan(_Model):
    """Teach a skill with a new LoRA adapter, replaying retained skills so they are not forgotten."""

    skill: str = Field(pattern=SKILL_NAME)
    method: Literal["lora"] = "lora"
    hyperparameters: LoraHyperparameters = Field(default_factory=LoraHyperparameters)
    replay: Replay = Field(default_factory=Replay)
    data: TrainingData = Field(default_factory=TrainingData)
    resources: Resources = Field(default_factory=Resources)

    @property
    def data_skill(self) -> str:
        return self.data.skill or self.skill


class UnlearningHyperparameters(LoraHyperparameters):
    steps: int = Field(default=60, gt=0)
    lr: float = Field(default=2e-3, gt=0.0, lt=1.0)
    eval_every: int = Field(default=10, gt=0)


class DownskillPlan(_Model):
    """Retire a skill with an unlearning method named as the registry names it (never a path)."""

    skill: str = Field(pattern=SKILL_NAME)
    method: str = Field(default="npo", description="npo, simnpo, rmu, undo, grad_diff, grad_ascent or negation")
    hyperparameters: UnlearningHyperparameters = Field(default_factory=UnlearningHyperparameters)
    options: dict[str, float] = Field(default_factory=dict, description="the method's own options (beta, retain_weight, ...)")
    retain: list[str] = Field(default_factory=list)
    target: Literal["all", "localized"] = Field(default="all", description="LoRA on every layer, or only on the retired skill's own heads")
    target_heads: int = Field(default=3, gt=0, le=64, description="heads a localized adapter may change")
    resources: Resources = Field(default_factory=Resources)

    @model_validator(mode="before")
    @classmethod
    def _legacy_options(cls, data: object) -> object:
        """Policies written before ``options`` existed put a method's options among the
        hyperparameters; read them where they belong (an explicit ``options`` entry wins)."""
        if not isinstance(data, dict) or not isinstance(data.get("hyperparameters"), dict):
            return data
        common = set(UnlearningHyperparameters.model_fields)
        hp = dict(data["hyperparameters"])
        moved = {k: hp.pop(k) for k in list(hp) if k in _LEGACY_OPTION_KEYS and k not in common}
        if not moved:
            return data
        options = data.get("options") if isinstance(data.get("options"), dict) else {}
        return {**data, "hyperparameters": hp, "options": {**moved, **options}}

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str, info: ValidationInfo) -> str:
        ctx = _context(info)
        methods = ctx.methods if ctx else _known_methods()
        if value not in methods:
            raise ValueError(f"unknown unlearning method {value!r}; known methods: {', '.join(methods)}")
        return value

    def method_options(self) -> dict[str, float]:
        """The options to pass to ``unlearning.get_method(method, **options)``."""
        return dict(self.options)


# option names older policies wrote under hyperparameters (see DownskillPlan._legacy_options)
_LEGACY_OPTION_KEYS = frozenset({"beta", "retain_weight", "negation_weight"})


class Plans(_Model):
    upskill: UpskillPlan | None = None
    downskill: DownskillPlan | None = None


# ---- triggers ----------------------------------------------------------------------------------


class Retry(_Model):
    max_retries: int = Field(default=0, ge=0, le=10)
    backoff_seconds: float = Field(default=60.0, ge=0.0, le=86_400.0)


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'UTC' or 'Europe/Berlin')") from None
    return value


class _TriggerBase(_Model):
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    plan: PlanName
    retry: Retry = Field(default_factory=Retry)


class ManualTrigger(_TriggerBase):
    kind: Literal["manual"]


# A digit in the day-of-week field means Monday=0 to APScheduler 3 but Sunday=0 to cron.
_NUMERIC_DOW = re.compile(r"(^|[,\-/])\d")


class CronTriggerSpec(_TriggerBase):
    """A crontab schedule (minute hour day month day-of-week), run by APScheduler 3."""

    kind: Literal["cron"]
    cron: str
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("cron")
    @classmethod
    def _fires(cls, value: str, info: ValidationInfo) -> str:
        # feasibility is judged in UTC: a time zone moves fire times by hours, not by years
        ctx = _context(info)
        next_fire_time(value, "UTC", ctx.today if ctx else None)
        return value

    def build(self) -> CronTrigger:
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger.from_crontab(self.cron, timezone=self.timezone)


class SunsetTrigger(_TriggerBase):
    """Fires once at a retired skill's sunset date (00:00 in ``timezone``)."""

    kind: Literal["sunset"]
    skill: str = Field(pattern=SKILL_NAME)
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _check_timezone(value)


Trigger = Annotated[Union[ManualTrigger, CronTriggerSpec, SunsetTrigger], Field(discriminator="kind")]


def next_fire_time(cron: str, tz: str = "UTC", today: date | None = None) -> datetime:
    """When ``cron`` first fires after ``today`` 00:00 in ``tz``; ValueError if it cannot be used.

    Refused: what APScheduler 3 refuses (field count, ranges such as minute 61 or day 0, bad
    names), numeric day-of-week (APScheduler 3 counts Monday=0, cron Sunday=0: the same line
    would run on another day than its author meant; use names, ``mon-fri``), and expressions
    that never fire within ``CRON_HORIZON_YEARS`` (``* * 31 2 *`` is valid syntax to APScheduler,
    yet February has no 31st).
    """
    from apscheduler.triggers.cron import CronTrigger

    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {cron!r} has {len(fields)} fields; expected 5: minute hour day month day-of-week"
        )
    if _NUMERIC_DOW.search(fields[4]):
        raise ValueError(
            f"cron {cron!r}: write the day of week by name (mon, tue, ..., sun; e.g. 'mon-fri'): "
            "APScheduler 3 counts 0 as Monday, crontab counts 0 as Sunday"
        )
    zone = zoneinfo.ZoneInfo(tz)
    start_day = today or datetime.now(timezone.utc).date()
    start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=zone)
    try:
        trigger = CronTrigger(
            minute=fields[0],
            hour=fields[1],
            day=fields[2],
            month=fields[3],
            day_of_week=fields[4],
            timezone=zone,
            start_date=start,
            end_date=start + timedelta(days=366 * CRON_HORIZON_YEARS),
        )
    except ValueError as exc:
        raise ValueError(f"cron {cron!r} is not valid: {exc}") from None
    fire = trigger.get_next_fire_time(None, start)
    if fire is None:
        raise ValueError(
            f"cron {cron!r} never fires within {CRON_HORIZON_YEARS} years of {start_day} "
            "(for example a day that month does not have)"
        )
    return fire


# ---- gate and approvals ------------------------------------------------------------------------


class HarnessSettings(_Model):
    """The measurement every candidate is gated under (part of its harness hash)."""

    max_new_tokens: int = Field(default=256, gt=0, le=8192)
    n_samples: int = Field(default=1, gt=0, le=200)
    k: int = Field(default=1, gt=0)
    split: Literal["dev", "test", "fresh"] = Field(default="test", description="the gate split")
    selection_split: Literal["dev", "test"] = Field(default="dev", description="where jobs choose checkpoints")
    max_problems: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _roles_apart(self) -> "HarnessSettings":
        if self.split == self.selection_split:
            raise ValueError(
                f"split and selection_split are both {self.split!r}: a job would choose its checkpoint on the "
                "very problems its gate then decides on; gate on 'test' and select on 'dev'"
            )
        return self


class TruncationCheck(_Model):
    max_truncated_share: float = Field(default=0.05, ge=0.0, le=1.0, description="generations still cut off at 2x budget")


class GeneralizationCheck(_Model):
    tolerance: float = Field(default=0.10, ge=0.0, le=1.0, description="allowed gate-split minus fresh gap")


class ContaminationCheck(_Model):
    max_share: float = Field(default=0.10, ge=0.0, le=1.0, description="near-duplicates of train probes allowed per split")


class RelearningCheck(_Model):
    steps: int = Field(default=8, gt=0, le=200)
    examples: int = Field(default=32, gt=0, description="probes of the retired skill's relearn split")
    lr: float = Field(default=2e-3, gt=0.0, lt=1.0)
    max_problems: int | None = Field(
        default=60, gt=0, description="gate-split problems measured after each step (None: all); 60 resolve half of any start above 0.1",
    )
    reference: str = Field(
        default="auto", pattern=r"^(auto|base|retrain|none|[0-9]+)$",
        description="what the relearning curve is compared with: auto (nearest ancestor or base that never learned the "
        "skill, else a retrain, else none), base, retrain, none (the weaker half-start rule), or a version number",
    )
    tolerance: float = Field(
        default=0.10, ge=0.0, le=1.0,
        description="allowed excess of the candidate's relearning area over the reference's (upper bound, paired over problems)",
    )


class MembershipCheck(_Model):
    probes: int = Field(default=64, gt=0, description="train (member) and test (non-member) probes of the retired skill scored")
    k: float = Field(default=0.2, gt=0.0, le=1.0, description="share of least likely solution tokens the Min-K% score averages")
    max_gap: float | None = Field(
        default=None, ge=0.0, le=1.0, description="fail when the candidate's AUC exceeds the reference's by more; None: report only",
    )


class GateSettings(_Model):
    tolerance: float = Field(default=0.05, ge=0.0, le=1.0, description="default max drop vs champion")
    alpha: float = Field(default=0.05, gt=0.0, le=0.5, description="significance level of the tests")
    min_probes: int = Field(default=20, gt=0, description="minimum problems measured per skill")
    required_checks: list[CheckName] = Field(default_factory=lambda: list(CHECKS))
    harness: HarnessSettings = Field(default_factory=HarnessSettings)
    truncation: TruncationCheck = Field(default_factory=TruncationCheck)
    generalization: GeneralizationCheck = Field(default_factory=GeneralizationCheck)
    contamination: ContaminationCheck = Field(default_factory=ContaminationCheck)
    relearning: RelearningCheck = Field(default_factory=RelearningCheck)
    membership: MembershipCheck = Field(default_factory=MembershipCheck)

    @field_validator("required_checks", mode="before")
    @classmethod
    def _renamed(cls, value: object) -> object:
        return [_RENAMED_CHECKS.get(v, v) for v in value] if isinstance(value, list) else value

    @field_validator("required_checks")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        dupes = sorted({v for v in value if value.count(v) > 1})
        if dupes:
            raise ValueError(f"listed twice: {', '.join(dupes)}")
        return value


class Approvals(_Model):
    approvers: list[str] = Field(min_length=1, description="who may approve and promote to champion")
    required: int = Field(default=1, ge=0)
    auto_promote: bool = Field(default=False, description="the scheduler may promote when the gate passes")
    allow_self_approval: bool = Field(
        default=False, description="the submitter of the job that made a version may be its only approval (two-person rule off)"
    )


# ---- the policy --------------------------------------------------------------------------------


class Policy(_Model):
    """One kernel's policy. See policies/README.md for every field."""

    schema_version: Literal[1] = 1
    kernel: str = Field(pattern=KERNEL_NAME)
    description: str = ""
    owners: list[str] = Field(min_length=1)
    skills: Skills
    plans: Plans = Field(default_factory=Plans)
    triggers: list[Trigger] = Field(default_factory=list)
    gate: GateSettings = Field(default_factory=GateSettings)
    approvals: Approvals

    @model_validator(mode="after")
    def _cross(self, info: ValidationInfo) -> "Policy":
        ctx = info.context if isinstance(info.context, dict) else {}
        if ctx.get("defer_cross_checks"):
            return self  # the loader runs cross_check itself to locate each problem
        issues = cross_check(self, _context(info) or PolicyContext.default())
        if issues:
            raise ValueError("; ".join(f"{dotted(loc)}: {msg}" for loc, msg in issues))
        return self

    # convenient views for the gate, the jobs and the scheduler
    def retired(self, name: str) -> RetiredSkill | None:
        return next((s for s in self.skills.retired if s.name == name), None)

    def tolerance_for(self, skill: RetainedSkill) -> float:
        return self.gate.tolerance if skill.tolerance is None else skill.tolerance

    def overdue_sunsets(self, today: date) -> list[str]:
        """Retained skills whose sunset has passed: a state to report and act on (retire them),
        never a reason to refuse reading the policy."""
        return [
            f"skill {s.name!r} is still retained past its sunset {s.sunset} (today {today}): "
            "move it to skills.retired with a ceiling and run the downskill"
            for s in self.skills.retained
            if s.sunset is not None and s.sunset < today
        ]

    def trigger_ids(self) -> list[str]:
        """Stable ids: the trigger's name, or ``<kernel>:<kind>:<index>``."""
        return [t.name or f"{self.kernel}:{t.kind}:{i}" for i, t in enumerate(self.triggers)]


def dotted(loc: Loc) -> str:
    """``('skills', 'retained', 0, 'floor')`` -> ``skills.retained[0].floor``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def cross_check(policy: Policy, ctx: PolicyContext) -> list[tuple[Loc, str]]:
    """Every rule that relates fields to each other or to the world, with each problem's location."""
    issues: list[tuple[Loc, str]] = []
    retained = {s.name: i for i, s in enumerate(policy.skills.retained)}
    retired = {s.name: i for i, s in enumerate(policy.skills.retired)}

    # skills: their own packs valid, unique, not both, known to a scorer, retained ones not past their sunset
    pack_issues, packed = _pack_issues(policy.skills, ctx)
    issues += pack_issues
    broken = set(policy.skills.sources()) - set(packed)  # said once, as its pack's problem
    ctx = replace(ctx, skills={**ctx.skills, **packed})
    for group, entries in (("retained", policy.skills.retained), ("retired", policy.skills.retired)):
        seen: set[str] = set()
        for i, skill in enumerate(entries):
            loc: Loc = ("skills", group, i)
            if skill.name in seen:
                issues.append((loc + ("name",), f"skill {skill.name!r} is listed twice in skills.{group}"))
            seen.add(skill.name)
            if skill.name not in broken:
                issues.extend(_skill_known(loc, skill.name, skill.scorer, ctx))
    for name, i in retired.items():
        if name in retained:
            issues.append(
                (("skills", "retired", i, "name"), f"skill {name!r} cannot be both retained and retired")
            )
    for i, skill in enumerate(policy.skills.retained):
        if ctx.today is not None and skill.sunset is not None and skill.sunset < ctx.today:
            issues.append(
                (
                    ("skills", "retained", i, "sunset"),
                    f"skill {skill.name!r} is still retained but its sunset {skill.sunset} is past "
                    f"(today {ctx.today}): move it to skills.retired with a ceiling, or change the date",
                )
            )

    def must_be(names: dict[str, int], what: str, loc: Loc, name: str) -> None:
        if name not in names:
            listed = ", ".join(sorted(names)) or "none"
            issues.append((loc, f"skill {name!r} is not in skills.{what} (listed: {listed})"))

    up = policy.plans.upskill
    if up is not None:
        must_be(retained, "retained", ("plans", "upskill", "skill"), up.skill)
        if up.data.skill is not None:
            must_be(retained, "retained", ("plans", "upskill", "data", "skill"), up.data.skill)
        for j, name in enumerate(up.replay.skills):
            if name == up.skill:
                issues.append((("plans", "upskill", "replay", "skills", j), f"{name!r} is the skill being learned; it cannot be replayed"))
            else:
                must_be(retained, "retained", ("plans", "upskill", "replay", "skills", j), name)
        if up.replay.skills and up.replay.ratio == 0:
            issues.append((("plans", "upskill", "replay", "ratio"), "replay skills are listed but ratio is 0"))
        if up.replay.ratio > 0 and not up.replay.skills:
            issues.append((("plans", "upskill", "replay", "skills"), f"ratio is {up.replay.ratio} but no replay skills are listed"))

    down = policy.plans.downskill
    if down is not None:
        must_be(retired, "retired", ("plans", "downskill", "skill"), down.skill)
        for j, name in enumerate(down.retain):
            must_be(retained, "retained", ("plans", "downskill", "retain", j), name)
        if down.method in ctx.methods:
            if method_class(down.method).needs_retain and not down.retain:
                issues.append(
                    (("plans", "downskill", "retain"), f"method {down.method!r} has a retain loss: list the retained skills to keep")
                )
            for option, message in option_problems(down.method, down.options):
                issues.append((("plans", "downskill", "options", option), message))
        hp = down.hyperparameters
        if hp.eval_every > hp.steps:
            issues.append((("plans", "downskill", "hyperparameters", "eval_every"), f"eval_every={hp.eval_every} exceeds steps={hp.steps}: no checkpoint would be evaluated"))

    names: set[str] = set()
    for i, trigger in enumerate(policy.triggers):
        loc = ("triggers", i)
        if trigger.name is not None:
            if trigger.name in names:
                issues.append((loc + ("name",), f"trigger name {trigger.name!r} is used twice"))
            names.add(trigger.name)
        if getattr(policy.plans, trigger.plan) is None:
            issues.append((loc + ("plan",), f"trigger runs the {trigger.plan} plan but plans.{trigger.plan} is not defined"))
        if isinstance(trigger, SunsetTrigger):
            must_be(retired, "retired", loc + ("skill",), trigger.skill)
            if trigger.plan != "downskill":
                issues.append((loc + ("plan",), "a sunset trigger retires a skill: its plan must be downskill"))
            elif down is not None and down.skill != trigger.skill and trigger.skill in retired:
                issues.append((loc + ("skill",), f"sunset trigger names {trigger.skill!r} but plans.downskill retires {down.skill!r}"))

    gate = policy.gate
    if gate.harness.k > gate.harness.n_samples:
        issues.append(
            (("gate", "harness", "k"), f"pass@{gate.harness.k} needs at least k samples per problem; n_samples is {gate.harness.n_samples}")
        )
    approvals = policy.approvals
    for j, name in enumerate(approvals.approvers):
        if name in approvals.approvers[:j]:
            issues.append((("approvals", "approvers", j), f"approver {name!r} is listed twice"))
    if approvals.required > len(set(approvals.approvers)):
        issues.append(
            (("approvals", "required"), f"required={approvals.required} approvals but only {len(set(approvals.approvers))} approver(s) listed")
        )
    if gate.harness.max_problems is not None and gate.harness.max_problems < gate.min_probes:
        issues.append(
            (("gate", "harness", "max_problems"), f"max_problems={gate.harness.max_problems} is below gate.min_probes={gate.min_probes}: every gate would fail")
        )
    return issues


def _pack_issues(skills: Skills, ctx: PolicyContext) -> tuple[list[tuple[Loc, str]], dict[str, str]]:
    """Problems of the skill packs a policy names (the first of each pack, and how many), and
    the skills they provide (name -> scorer)."""
    issues: list[tuple[Loc, str]] = []
    if skills.dir is not None and not Path(skills.dir).expanduser().is_dir():
        issues.append((("skills", "dir"), f"{skills.dir} is not a folder of skill packs"))
    provided: dict[str, str] = {}
    named = {s.name: ("skills", g, i, "pack") for g, group in (("retained", skills.retained), ("retired", skills.retired))
             for i, s in enumerate(group) if s.pack}
    for name, root in skills.sources().items():
        loc: Loc = named.get(name, ("skills", "dir"))
        problems = _pack_check(root, ctx)
        if problems:
            more = f" (and {len(problems) - 1} more: kernel-lifecycle skills validate {root})" if len(problems) > 1 else ""
            issues.append((loc, f"skill pack of {name!r} is not valid: {problems[0].text()}{more}"))
            continue
        spec = load_skill(root).spec
        if spec.name != name:
            issues.append((loc, f"the pack at {root} is skill {spec.name!r}, not {name!r} (a pack's folder is named as its skill)"))
            continue
        provided[spec.name] = spec.scorer
    return issues, provided


def _pack_check(root: Path, ctx: PolicyContext) -> list[PackProblem]:
    """Every line of a pack is checked when a policy is validated or applied; a stored snapshot
    (read by every job, gate and scheduler round, ``ctx.today`` None) only needs it to be there."""
    if ctx.today is not None:
        return pack_problems(root, scorers=ctx.scorers)
    if not (root / "skill.json").is_file():
        return [PackProblem(str(root / "skill.json"), None, "missing: the pack is gone")]
    return []


def _skill_known(loc: Loc, name: str, scorer: str | None, ctx: PolicyContext) -> list[tuple[Loc, str]]:
    known = ctx.skills.get(name)
    if scorer is not None:
        if scorer not in ctx.scorers:
            return [(loc + ("scorer",), f"unknown scorer {scorer!r}; known scorers: {', '.join(sorted(ctx.scorers))}")]
        if known is not None and known != scorer:
            return [(loc + ("scorer",), f"skill {name!r} is scored by {known!r}, not {scorer!r}")]
        return []
    if known is None:
        listed = ", ".join(sorted(ctx.skills)) or "none"
        return [
            (loc + ("name",), f"unknown skill {name!r}; known skills: {listed} (declare a new one with `scorer:`)")
        ]
    return []


__all__ = [
    "CHECKS",
    "Approvals",
    "CronTriggerSpec",
    "DownskillPlan",
    "GateSettings",
    "HarnessSettings",
    "ManualTrigger",
    "Plans",
    "Policy",
    "PolicyContext",
    "RetainedSkill",
    "RetiredSkill",
    "Retry",
    "Skills",
    "SunsetTrigger",
    "Trigger",
    "UpskillPlan",
    "cross_check",
    "dotted",
    "next_fire_time",
]
