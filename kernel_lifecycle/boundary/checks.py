"""Checks every boundary report carries: the artifacts that fool evaluations, tested for.

They come from a published negative result in which a +15 point HumanEval gain was a truncation
artifact and a probe's AUC of 0.68 fell to chance on fresh prompts. Each check tests a *shift*
with a significance test (``alpha`` from the policy), not only whether a threshold was crossed:

- ``truncation``: every generation cut off at the budget is generated again at twice the
  budget; the check fails when a skill's rate moves significantly between the two (an exact
  sign test over the problems whose outcome changed: McNemar's exact test for one sample per
  problem), or when more than ``max_truncated_share`` of generations are still cut off at 2x
  (then the measurement cannot rule truncation out at all);
- ``generalization``: the gate-split value minus the ``fresh`` value (held-out problem families)
  with a bootstrap interval; fails when the gap is significantly above ``tolerance``;
- ``scorer_parity``: each skill's arbiter accepts the reference solutions of the gate split (a
  broken arbiter fails here); whether two *reports* compare is their harness hashes' business
  (:func:`require_parity`, and the gate's scorer_parity rule);
- ``contamination``: held-out (``fresh``) probes that are a training text up to names, constants
  and formatting (:mod:`kernel_lifecycle.boundary.overlap`); dev and test are in-family by design;
- ``relearning``, ``retain_only``, ``membership`` (downskill only, ``jobs.downskill``): how
  fast a short fine-tune brings a retired skill back next to a model that never knew it
  (``boundary.relearning``, ``boundary.reference``), whether training on retained data alone
  brings it back, and whether its training examples still stand out (``boundary.membership``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kernel_lifecycle.boundary.metrics import bootstrap_means, mcnemar_exact_p, problem_scores
from kernel_lifecycle.boundary.overlap import ShapeIndex
from kernel_lifecycle.boundary.report import BoundaryReport, CheckResult, Gap, SkillMetrics
from kernel_lifecycle.errors import RefusedError

class CheckSettings(BaseModel):
    """How strict the checks are: the policy's ``gate`` section, carried by every job config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(default=0.05, gt=0.0, le=0.5)
    max_truncated_share: float = Field(default=0.05, ge=0.0, le=1.0)
    generalization_tolerance: float = Field(default=0.10, ge=0.0, le=1.0)
    contamination_max_share: float = Field(default=0.10, ge=0.0, le=1.0)

    @classmethod
    def of_policy(cls, policy) -> "CheckSettings":  # noqa: ANN001
        gate = policy.gate
        return cls(
            alpha=gate.alpha, max_truncated_share=gate.truncation.max_truncated_share,
            generalization_tolerance=gate.generalization.tolerance, contamination_max_share=gate.contamination.max_share,
        )


MAX_NEAR_DUPLICATE_SHARE = 0.10  # the check fails when more of a split's probes are near-duplicates


def truncation_check(
    base: Mapping[str, SkillMetrics], doubled: Mapping[str, SkillMetrics], *, alpha: float, max_truncated_share: float,
    retired: Collection[str] = (),
) -> CheckResult:
    """Does a larger budget change the measurement? See the module docstring."""
    numbers = {}
    for skill, metrics in base.items():
        second = doubled[skill]
        before, after = problem_scores(metrics), problem_scores(second)
        down = sum(1 for t, v in before.items() if after.get(t, v) < v)
        up = sum(1 for t, v in before.items() if after.get(t, v) > v)
        numbers.update({
            f"{skill}.value": metrics.value, f"{skill}.value_2x": second.value, f"{skill}.p_value": mcnemar_exact_p(down, up),
            f"{skill}.truncation_rate": metrics.truncation_rate, f"{skill}.truncation_rate_2x": second.truncation_rate,
            f"{skill}.up": float(up), f"{skill}.down": float(down),
        })
    return judge_truncation(numbers, list(base), alpha=alpha, max_truncated_share=max_truncated_share, retired=retired)


def judge_truncation(
    numbers: Mapping[str, float], skills: Sequence[str], *, alpha: float, max_truncated_share: float, retired: Collection[str] = (),
    judged: Collection[str] | None = None,
) -> CheckResult:
    """The truncation verdict from its numbers (``truncation_check``'s).

    A retained skill fails when its rate moves significantly at 2x (an exact sign test, McNemar's
    for one sample per problem) or when more than ``max_truncated_share`` of its generations are
    still cut off at 2x: a cut-off answer might have passed, so the measurement is not one.

    A *retired* skill is judged for what its ceiling claims, that the kernel no longer delivers
    the skill within the budget: it fails only when doubling the budget brings it back (its rate
    rises significantly at 2x). Generations that ramble to the budget without a passing answer
    count as the skill absent (fell to the floor at this budget); their share is reported, and
    whether the skill is *hidden* behind them is the relearning comparison's, the retain-only
    control's and the membership signal's question, not this check's.

    ``judged``: the retained skills a verdict is asked about (None: every skill not retired). A
    skill neither judged nor retired (a version's first upskill has not taught it yet, a retired
    skill before its sunset) is reported, never failed: nothing is claimed about it.
    """
    parts, failed = [], []
    for skill in skills:
        value, value_2x, p = numbers[f"{skill}.value"], numbers[f"{skill}.value_2x"], numbers[f"{skill}.p_value"]
        up, down, rate_2x = int(numbers.get(f"{skill}.up", 0)), int(numbers.get(f"{skill}.down", 0)), numbers[f"{skill}.truncation_rate_2x"]
        why = []
        if judged is not None and skill not in judged and skill not in retired:
            parts.append(f"{skill} {value:.3f} -> {value_2x:.3f} at 2x ({rate_2x:.0%} still cut off at 2x; not judged: "
                         "this version claims nothing about it)")
            continue
        if skill in retired:
            if p < alpha and up > down:
                why.append(f"retired, and back at 2x budget ({up} problems up, {down} down, p={p:.3g} < {alpha})")
            elif rate_2x > max_truncated_share:
                parts.append(f"{skill} {value:.3f} -> {value_2x:.3f} at 2x (retired: {rate_2x:.0%} still cut off at 2x without "
                             "coming back; counted as absent, see the module doc of checks)")
                continue
        else:
            if p < alpha:
                why.append(f"rate moves significantly at 2x budget ({up} problems up, {down} down, p={p:.3g} < {alpha})")
            if rate_2x > max_truncated_share:
                why.append(f"{rate_2x:.0%} of generations still cut off at 2x (> {max_truncated_share:.0%}): truncation cannot be ruled out")
        if why:
            failed.append(skill)
        parts.append(f"{skill} {value:.3f} -> {value_2x:.3f} at 2x" + (" [" + "; ".join(why) + "]" if why else ""))
    detail = ("FAILED for " + ", ".join(failed) + ": " if failed else "no significant shift at 2x budget: ") + "; ".join(parts)
    return CheckResult(name="truncation", passed=not failed, detail=detail, numbers=dict(numbers))


def with_retired_truncation(
    checks: Sequence[CheckResult], *, retired: Collection[str], alpha: float, max_truncated_share: float,
    judged: Collection[str] | None = None,
) -> list[CheckResult]:
    """``checks`` with the truncation check judged again knowing which skills are retired (and,
    given ``judged``, which retained skills a verdict is asked about)."""
    out = []
    for check in checks:
        if check.name == "truncation":
            skills = [key[: -len(".value_2x")] for key in check.numbers if key.endswith(".value_2x")]
            if skills:  # a check without per-skill numbers keeps its own verdict
                check = judge_truncation(check.numbers, skills, alpha=alpha, max_truncated_share=max_truncated_share,
                                         retired=retired, judged=judged)
        out.append(check)
    return out


def generalization_gap(gate: SkillMetrics, fresh: SkillMetrics, *, seed: int = 0, confidence: float = 0.95) -> tuple[Gap, np.ndarray]:
    """Gate-split value minus fresh value, with a percentile interval from resampling the
    problems of each split independently (they are different problems: no pairing)."""
    a = list(problem_scores(gate).values()) or [0.0]
    b = list(problem_scores(fresh).values()) or [0.0]
    diffs = bootstrap_means(a, seed=seed) - bootstrap_means(b, seed=seed + 1)
    tail = (1 - confidence) / 2
    gap = Gap(
        gate=gate.value, fresh=fresh.value, gap=gate.value - fresh.value,
        low=float(np.quantile(diffs, tail)), high=float(np.quantile(diffs, 1 - tail)),
    )
    return gap, diffs


def generalization_check(
    gate: Mapping[str, SkillMetrics], fresh: Mapping[str, SkillMetrics], *, tolerance: float, alpha: float, seed: int = 0,
) -> tuple[CheckResult, dict[str, Gap]]:
    """Fails when a skill's gate-minus-fresh gap is significantly above ``tolerance``: the
    one-sided (1 - alpha) lower bound of the gap exceeds it."""
    gaps, numbers, parts, failed = {}, {}, [], []
    for skill, metrics in gate.items():
        if skill not in fresh:
            continue
        gap, diffs = generalization_gap(metrics, fresh[skill], seed=seed)
        gaps[skill] = gap
        lower = float(np.quantile(diffs, alpha))
        numbers.update({f"{skill}.gate": gap.gate, f"{skill}.fresh": gap.fresh, f"{skill}.gap": gap.gap,
                        f"{skill}.gap_low": gap.low, f"{skill}.gap_high": gap.high, f"{skill}.gap_lower_bound": lower})
        bad = lower > tolerance
        if bad:
            failed.append(skill)
        parts.append(
            f"{skill} {gap.gate:.3f} (gate) vs {gap.fresh:.3f} (fresh): gap {gap.gap:+.3f} [{gap.low:+.3f}, {gap.high:+.3f}]"
            + (f", significantly above tolerance {tolerance:.2f}" if bad else "")
        )
    detail = ("FAILED for " + ", ".join(failed) + ": " if failed else f"no gap significantly above {tolerance:.2f}: ") + "; ".join(parts)
    return CheckResult(name="generalization", passed=not failed, detail=detail, numbers=numbers), gaps


def scorer_parity_check(controls: Mapping[str, tuple[int, int]]) -> CheckResult:
    """Every skill's arbiter accepts the reference solutions it is asked to judge."""
    problems, numbers = [], {}
    for skill, (passed, total) in controls.items():
        numbers[f"{skill}.reference_passed"] = float(passed)
        numbers[f"{skill}.reference_total"] = float(total)
        if total == 0 or passed != total:
            problems.append(f"{skill}: the arbiter accepted {passed}/{total} reference solutions")
    detail = "; ".join(problems) if problems else "every arbiter accepted all reference solutions checked"
    return CheckResult(name="scorer_parity", passed=not problems, detail=detail, numbers=numbers)


def require_parity(a: BoundaryReport, b: BoundaryReport) -> None:
    """Two reports compare only under the same harness; else say which fields differ."""
    if a.harness_hash == b.harness_hash:
        return
    left, right = a.harness.model_dump(), b.harness.model_dump()
    fields = []
    for key in sorted(left):
        x, y = left[key], right.get(key)
        if x == y:
            continue
        if isinstance(x, dict) and isinstance(y, dict):
            # name the entries: "scorers[cobol_compile]" says what to re-run, "scorers" does not
            fields += [f"{key}[{k}]" for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
        else:
            fields.append(f"{key} {x!r} vs {y!r}")
    raise RefusedError(
        f"reports were measured under different harnesses ({a.harness_hash} vs {b.harness_hash}; "
        f"differing: {', '.join(fields)}); re-evaluate one under the other's harness"
    )


def contamination_check(
    training_texts: Iterable[str],
    probe_texts: Mapping[str, list[str]],
    *,
    languages: Mapping[str, str] | None = None,
    max_share: float = MAX_NEAR_DUPLICATE_SHARE,
) -> CheckResult:
    """Share of each group of probes that are near-duplicates of a training text.

    ``probe_texts`` maps a group (a skill, or ``skill/split``) to its probes' texts
    (``prompt + canonical_solution``); ``languages`` maps a group to the language its texts are
    read as (``python``, ``sql``, ``cobol``: ``overlap.language_of(scorer)``; default ``text``). A near-duplicate is a training text up to names, constants and formatting (see
    :func:`kernel_lifecycle.boundary.overlap.shape`): what a model can recall instead of solve.
    The check fails when any group's share exceeds ``max_share``. Only splits that claim to be
    new (``fresh``) should be passed: dev and test are in-family by design.
    """
    training = list(training_texts)
    indexes: dict[str, ShapeIndex] = {}
    numbers, parts, worst = {}, [], 0.0
    for group, texts in probe_texts.items():
        language = (languages or {}).get(group, "text")
        if language not in indexes:
            indexes[language] = ShapeIndex(((str(i), t) for i, t in enumerate(training)), language)
        found = sum(indexes[language].match(text) is not None for text in texts)
        share = found / len(texts) if texts else 0.0
        worst = max(worst, share)
        numbers[f"{group}.contaminated_share"] = share
        parts.append(f"{group} {found}/{len(texts)}")
    passed = worst <= max_share
    detail = (
        "probes that are a training text up to names, constants and formatting: "
        + (", ".join(parts) or "none measured")
        + ("" if passed else f" (limit {max_share:.0%})")
    )
    return CheckResult(name="contamination", passed=passed, detail=detail, numbers=numbers)
