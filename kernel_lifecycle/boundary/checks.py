"""Checks every boundary report carries: the artifacts that fool evaluations, tested for.

They come from a published negative result in which a +15 point HumanEval gain was a truncation
artifact and a probe's AUC of 0.68 fell to chance on fresh prompts:

- ``truncation``: re-scored with twice the token budget, no skill's verdict may flip;
- ``fresh_dev_agreement``: the verdict on ``fresh`` probes (never used for tuning) must agree
  with the verdict on ``dev``;
- ``scorer_parity``: each skill is judged by the scorer its spec declares, and that scorer
  accepts the reference solutions (a mismatched or broken arbiter fails here; two *reports*
  compare only when their harness hashes match: :func:`require_parity`);
- ``contamination``: dev/fresh probes that are near-copies of a training text (13-grams).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kernel_lifecycle.boundary.report import BoundaryReport, CheckResult, SkillMetrics
from kernel_lifecycle.errors import RefusedError

Thresholds = Mapping[str, tuple[str, float]]  # skill -> ("retained", floor) | ("retired", ceiling)

NGRAM = 13
CONTAMINATED_SHARE = 0.5  # a probe is contaminated when half its 13-grams are in training data
CONTAMINATION_LIMIT = 0.01  # the check fails when more than 1% of probes are contaminated


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


def _ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """Whitespace-token n-grams. 13-grams follow GPT-3's contamination study: long enough that a
    shared n-gram is a copy, not an idiom. (Splitting punctuation off as tokens was tried on the
    demo skills: it shortens each window until COBOL boilerplate alone fills half a program's
    n-grams, and flags probes that copy nothing.)"""
    tokens = text.split()
    # a text shorter than n tokens is one n-gram of itself: a short probe copied whole still counts
    return {tuple(tokens[i : i + n]) for i in range(max(len(tokens) - n + 1, 0))} or ({tuple(tokens)} if tokens else set())


def contamination_check(
    training_texts: Iterable[str],
    probe_texts: Mapping[str, list[str]],
    *,
    ngram: int = NGRAM,
    limit: float = CONTAMINATION_LIMIT,
) -> CheckResult:
    """Share of dev/fresh probes that are near-copies of a training text.

    A probe is contaminated when one single training text holds at least half its n-grams:
    a copy with the names changed, which the model can recall instead of solve. (The union
    of all training texts is not the test: templated programs share boilerplate everywhere.)
    Two numbers per skill: ``contaminated_share`` (what fails the check above ``limit``) and
    ``ngram_overlap``, the fraction of all probe n-grams found anywhere in the training data.
    """
    from collections import Counter

    owners: dict[tuple[str, ...], list[int]] = {}  # n-gram -> training texts holding it
    for i, text in enumerate(training_texts):
        for gram in _ngrams(text, ngram):
            owners.setdefault(gram, []).append(i)
    numbers, parts, worst = {}, [], 0.0
    for skill, texts in probe_texts.items():
        contaminated, grams_total, grams_seen = 0, 0, 0
        for text in texts:
            grams = _ngrams(text, ngram)
            per_text: Counter[int] = Counter()
            for gram in grams:
                holders = owners.get(gram)
                if holders:
                    grams_seen += 1
                    per_text.update(holders)
            grams_total += len(grams)
            best = max(per_text.values(), default=0)
            if grams and best / len(grams) >= CONTAMINATED_SHARE:
                contaminated += 1
        share = contaminated / len(texts) if texts else 0.0
        worst = max(worst, share)
        numbers[f"{skill}.contaminated_share"] = share
        numbers[f"{skill}.ngram_overlap"] = grams_seen / grams_total if grams_total else 0.0
        parts.append(f"{skill} {contaminated}/{len(texts)} (overlap {numbers[f'{skill}.ngram_overlap']:.1%})")
    passed = worst <= limit
    detail = (
        f"probes with >= {CONTAMINATED_SHARE:.0%} of their {ngram}-grams in one training text: "
        + ", ".join(parts)
        + ("" if passed else f" (limit {limit:.0%})")
    )
    return CheckResult(name="contamination", passed=passed, detail=detail, numbers=numbers)
