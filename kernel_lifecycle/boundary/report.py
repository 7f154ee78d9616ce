"""The boundary report: per-skill metrics with intervals, entropy, truncation, and checks.

It is the unit the gates compare. Two reports compare only when their ``harness_hash``
matches (scorer parity): same probes, same generation budget, same samples, same scorers.

Roles of the splits are kept apart and recorded: ``selection_split`` (``dev``) is what a job
chose its checkpoint on; ``gate_split`` (``test``) is what every gated number comes from and is
never read during a job; ``fresh`` holds problem families no job trained on. Per skill the
report carries the gate-split metrics (``skills``), the fresh metrics (``fresh``) and the
generalization gap between them with an interval (``gaps``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


COMPLETION_CHARS = 2000  # of a probe's completion kept in the report (the per-probe table)
GateSplit = Literal["dev", "test", "fresh"]
SelectionSplit = Literal["dev", "test"]
Split = Literal["train", "dev", "test", "fresh", "relearn"]


class HarnessConfig(BaseModel):
    """Everything that changes a measurement. Hashed for scorer parity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(gt=0)
    n_samples: int = Field(default=1, gt=0)  # samples per problem (n of pass@k)
    k: int = Field(default=1, gt=0)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int = 0
    split: GateSplit = "test"  # the gate split
    selection_split: SelectionSplit = "dev"  # where jobs choose checkpoints; never the gate split
    max_problems: int | None = None  # None: every probe of the split
    # scorer name -> version string (compiler version, dialect, harness revision)
    scorers: dict[str, str] = Field(default_factory=dict)
    # skill name -> sha256 of the probe file used
    probe_digests: dict[str, str] = Field(default_factory=dict)

    def config_hash(self) -> str:
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]


class ProblemResult(BaseModel):
    """One problem's outcome: n samples, c of them passed. Kept for paired tests."""

    model_config = ConfigDict(extra="forbid")

    task_id: str
    n: int
    c: int
    truncated: int = 0
    no_code: int = 0
    family: str = ""  # the template or concept the probe comes from ("" when the skill names none)
    # the first sample's verdict line and completion (cut to COMPLETION_CHARS): the per-probe table
    result: str = ""
    completion: str = ""


class SkillMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skill: str
    scorer: str
    metric: Literal["pass_rate", "compile_rate"]
    split: Split
    n_problems: int
    n_samples: int
    k: int
    value: float  # pass@k or compile rate, in [0, 1]
    ci_low: float
    ci_high: float  # for 0/n this is the exact one-sided upper bound, never 0
    mean_entropy: float  # mean per-token entropy of the generations (nats)
    truncation_rate: float  # share of generations that hit max_new_tokens
    no_code_rate: float = 0.0  # share of generations with no code at all
    problems: list[ProblemResult] = Field(default_factory=list)

    def summary(self) -> str:
        pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
        # a zero is a bound, not a fact: 0/100 reads "below 3.0%", never "0.0%"
        value = f" below {pct(self.ci_high)}" if self.value == 0.0 else f"={pct(self.value)}"
        return (
            f"{self.skill} {self.metric}{value} "
            f"[{pct(self.ci_low)}, {pct(self.ci_high)}] n={self.n_problems}x{self.n_samples}"
        )


class Reference(BaseModel):
    """What a retired skill's relearning is judged against (``boundary.reference``): a model
    whose lineage never taught the skill, or none (then the weaker half-start rule)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["version", "base", "retrain", "none"]
    name: str  # "python-kernel v1", the base spec, "demo rebuilt without cobol", "none"
    why: str  # why this one (and why not a nearer one)
    version: str | None = None  # kind version
    spec: str | None = None  # kind base: its spec; retrain: its folder
    sha256: str | None = None  # the weights' sha256 (a version: its base's)


class CheckResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str  # truncation, generalization, scorer_parity, contamination, relearning, retain_only, membership
    passed: bool
    detail: str
    numbers: dict[str, float] = Field(default_factory=dict)
    curve: list[float] = Field(default_factory=list)  # relearning: the candidate's value after each step
    # relearning: what the candidate is compared with, and its curve under the same budget
    reference: Reference | None = None
    reference_curve: list[float] = Field(default_factory=list)


class Gap(BaseModel):
    """Generalization gap of one skill: gate-split value minus fresh value, with an interval
    (problems of the two splits resampled independently)."""

    model_config = ConfigDict(extra="forbid")

    gate: float
    fresh: float
    gap: float
    low: float
    high: float


class Forgetting(BaseModel):
    """What a retired skill's fresh verdict can claim: nothing when the kernel was already under
    the ceiling on fresh before the downskill (nothing there to forget)."""

    model_config = ConfigDict(extra="forbid")

    fresh_before: float
    fresh_before_ci_high: float
    vacuous: bool


class BoundaryReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kernel: str
    version: str | None = None
    harness: HarnessConfig
    harness_hash: str
    selection_split: str = "dev"
    gate_split: str = "dev"  # reports from before the split roles were recorded gated on dev
    skills: dict[str, SkillMetrics]  # on the gate split
    fresh: dict[str, SkillMetrics] = Field(default_factory=dict)  # on held-out families
    gaps: dict[str, Gap] = Field(default_factory=dict)
    forgetting: dict[str, Forgetting] = Field(default_factory=dict)  # retired skills, by a downskill
    checks: list[CheckResult] = Field(default_factory=list)
    # "<skill>/<split>" -> sha256 of every split file of every measured skill (Skill.digest): the
    # probe sets this report stands on; a gate never compares two reports whose gate splits differ
    split_digests: dict[str, str] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    def summary(self) -> str:
        """Per skill: the gate-split value, the fresh value and the gap (the version page's text)."""
        parts = []
        for name, m in self.skills.items():
            part = f"{m.summary()} ({self.gate_split})"
            if name in self.fresh and self.fresh[name] is not m:
                part += f", fresh {100 * self.fresh[name].value:.1f}%"
            if name in self.gaps:
                g = self.gaps[name]
                part += f", gap {100 * g.gap:+.1f} pts [{100 * g.low:+.1f}, {100 * g.high:+.1f}]"
            parts.append(part)
        return "; ".join(parts)

    def gate_digest(self, skill: str) -> str | None:
        """The digest of ``skill``'s gate split this report was measured on (None: not recorded)."""
        key = f"{skill}/{self.gate_split}"
        return self.split_digests.get(key) or self.harness.probe_digests.get(key)

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)

    def reusable_for(self, skill: str, harness: HarnessConfig, digests: dict[str, str]) -> bool:
        """Whether this report's numbers of ``skill`` (gate split and fresh) stand for a new
        measurement under ``harness`` on the probe files ``digests`` names (``<skill>/<split>`` ->
        sha256): same gate split, budget and problem count, the same probe files, both measured."""
        split = harness.split
        return (
            self.harness.split == split
            and self.harness.max_new_tokens == harness.max_new_tokens
            and self.harness.max_problems == harness.max_problems
            and all(
                digests.get(key) is not None and self.harness.probe_digests.get(key) == digests[key]
                for key in (f"{skill}/{split}", f"{skill}/fresh")
            )
            and skill in self.skills
            and skill in self.fresh
        )

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> "BoundaryReport":
        return cls.model_validate_json(text)
