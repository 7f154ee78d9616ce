"""Checks every boundary report carries: the artifacts that fool evaluations, tested for.

They come from a published negative result in which a +15 point HumanEval gain was a truncation
artifact and a probe's AUC of 0.68 fell to chance on fresh prompts:

- ``truncation``: re-scored with twice the token budget, no skill's verdict may flip;
- ``fresh_dev_agreement``: the verdict on ``fresh`` probes (never used for tuning) must agree
  with the verdict on ``dev``;
- ``scorer_parity``: each skill is judged by the scorer its spec declares, and that scorer
  accepts the reference solutions (a mismatched or broken arbiter fails here; two *reports*
  compare only when their harness hashes match: :func:`require_parity`);
- ``contamination``: held-out probes that are a training text up to names, constants and
  formatting (:mod:`kernel_lifecycle.boundary.overlap`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kernel_lifecycle.boundary.report import BoundaryReport, CheckResult, SkillMetrics
from kernel_lifecycle.errors import RefusedError

Thresholds = Mapping[str, tuple[str, float]]  # skill -> ("retained", floor) | ("retired", ceiling)

MAX_NEAR_DUPLICATE_SHARE = 0.10  # the check fails when more of a split's probes are near-duplicates


def verdict(metrics: SkillMetrics, threshold: tuple[str, float] | None) -> str:
    """What the measurement says about the skill: above/below its floor, under/over its ceiling."""
    if threshold is None:
        return "n/a"
    role, value = threshold
    if role == "retired":
        return "at ceiling" if metrics.ci_high <= value else "above ceiling"
    return "above floor" if metrics.value >= value else "below floor"


def _agree(a: SkillMetrics, b: SkillMetrics, threshold: tuple[str, float] | None) -> bool:
    if threshold is not None:
        return verdict(a, threshold) == verdict(b, threshold)
    # no threshold: the two intervals must overlap
    return a.ci_low <= b.ci_high and b.ci_low <= a.ci_high


def compare_check(
    name: str,
    base: Mapping[str, SkillMetrics],
    other: Mapping[str, SkillMetrics],
    thresholds: Thresholds,
    what: str,
) -> CheckResult:
    """A check that the verdict of every skill is the same under two measurements."""
    flips, numbers, parts = [], {}, []
    for skill, metrics in base.items():
        second = other[skill]
        threshold = thresholds.get(skill)
        numbers[f"{skill}.base"] = metrics.value
        numbers[f"{skill}.{what}"] = second.value
        parts.append(f"{skill} {metrics.value:.3f} -> {second.value:.3f} ({verdict(second, threshold)})")
        if not _agree(metrics, second, threshold):
            flips.append(skill)
    detail = ("verdict flips for " + ", ".join(flips) + "; " if flips else "no verdict flips; ") + "; ".join(parts)
    return CheckResult(name=name, passed=not flips, detail=detail, numbers=numbers)


def scorer_parity_check(declared: Mapping[str, str], measured: Mapping[str, SkillMetrics], controls: Mapping[str, tuple[int, int]]) -> CheckResult:
    """Each skill measured by its declared scorer, and that scorer passes the reference solutions."""
    problems, numbers = [], {}
    for skill, metrics in measured.items():
        if metrics.scorer != declared[skill]:
            problems.append(f"{skill} scored by {metrics.scorer}, its spec declares {declared[skill]}")
        passed, total = controls.get(skill, (0, 0))
        numbers[f"{skill}.reference_passed"] = float(passed)
        numbers[f"{skill}.reference_total"] = float(total)
        if total == 0 or passed != total:
            problems.append(f"{skill}: the arbiter accepted {passed}/{total} reference solutions")
    detail = "; ".join(problems) if problems else "every skill judged by its declared scorer; reference solutions all accepted"
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
    read as (``python``, ``sql``, ``cobol``, or a scorer name such as ``python_tests``; default
    ``text``). A near-duplicate is a training text up to names, constants and formatting (see
    :func:`kernel_lifecycle.boundary.overlap.shape`): what a model can recall instead of solve.
    The check fails when any group's share exceeds ``max_share``. Only splits that claim to be
    new (``fresh``) should be passed: dev and test are in-family by design.
    """
    from kernel_lifecycle.boundary.overlap import LANGUAGES, ShapeIndex

    training = list(training_texts)
    indexes: dict[str, ShapeIndex] = {}
    numbers, parts, worst = {}, [], 0.0
    for group, texts in probe_texts.items():
        language = (languages or {}).get(group, "text")
        language = LANGUAGES.get(language, language)
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
