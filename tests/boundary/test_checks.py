"""Checks on constructed measurements: flips fail, agreement passes, contamination is found."""

from __future__ import annotations

import pytest

from kernel_lifecycle.boundary.checks import compare_check, contamination_check, require_parity, scorer_parity_check
from kernel_lifecycle.boundary.report import SkillMetrics
from kernel_lifecycle.errors import RefusedError
from tests.factories import make_report


def _m(value: float, low: float | None = None, high: float | None = None, scorer: str = "python_tests") -> SkillMetrics:
    return SkillMetrics(
        skill="python", scorer=scorer, metric="pass_rate", split="dev", n_problems=100, n_samples=1, k=1,
        value=value, ci_low=value - 0.05 if low is None else low, ci_high=value + 0.05 if high is None else high,
        mean_entropy=0.3, truncation_rate=0.0,
    )


def test_truncation_flip_fails_and_stable_passes() -> None:
    thresholds = {"python": ("retained", 0.30)}
    flip = compare_check("truncation", {"python": _m(0.25)}, {"python": _m(0.40)}, thresholds, "2x_budget")
    assert not flip.passed and "verdict flips for python" in flip.detail
    assert flip.numbers == {"python.base": 0.25, "python.2x_budget": 0.40}
    stable = compare_check("truncation", {"python": _m(0.60)}, {"python": _m(0.62)}, thresholds, "2x_budget")
    assert stable.passed


def test_retired_skill_verdict_uses_the_upper_bound() -> None:
    thresholds = {"python": ("retired", 0.05)}
    dev = _m(0.0, 0.0, 0.03)
    fresh = _m(0.02, 0.005, 0.07)  # point under the ceiling, upper bound above it
    assert not compare_check("fresh_dev_agreement", {"python": dev}, {"python": fresh}, thresholds, "fresh").passed


def test_without_threshold_intervals_must_overlap() -> None:
    assert compare_check("x", {"python": _m(0.5)}, {"python": _m(0.55)}, {}, "fresh").passed
    assert not compare_check("x", {"python": _m(0.2)}, {"python": _m(0.8)}, {}, "fresh").passed


def test_scorer_parity_needs_declared_scorer_and_accepted_references() -> None:
    ok = scorer_parity_check({"python": "python_tests"}, {"python": _m(0.5)}, {"python": (8, 8)})
    assert ok.passed
    wrong = scorer_parity_check({"python": "python_tests"}, {"python": _m(0.5, scorer="cobol_compile")}, {"python": (8, 8)})
    assert not wrong.passed and "declares python_tests" in wrong.detail
    broken = scorer_parity_check({"python": "python_tests"}, {"python": _m(0.5)}, {"python": (3, 8)})
    assert not broken.passed and "3/8" in broken.detail


def test_contamination_detects_leaked_probes() -> None:
    train = [f"def add_{i}(x):\n    return x + {i} * {i} - {2 * i} // 3 + {i % 7}\n" for i in range(50)]
    clean = [f"def mul_{i}(y):\n    return y * {i} - {i} + {3 * i} % 5 - {i // 2}\n" for i in range(20)]
    check = contamination_check(train, {"python": clean})
    assert check.passed and check.numbers["python.contaminated_share"] == 0.0
    leaked = contamination_check(train, {"python": clean + train[:5]})
    assert not leaked.passed and leaked.numbers["python.contaminated_share"] == pytest.approx(0.2)


def test_require_parity_names_the_differing_fields() -> None:
    a, b = make_report(), make_report(max_new_tokens=320)
    require_parity(a, make_report())
    with pytest.raises(RefusedError, match="max_new_tokens"):
        require_parity(a, b)


def test_contamination_reports_the_overlap_fraction() -> None:
    train = ["alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi"]
    # 19 tokens: the first 13 copied, then 6 new ones. Of its 7 13-grams only the first is seen;
    # of its 12 8-grams the first 6 are.
    probe = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu one two three four five six"
    check = contamination_check(train, {"s": [probe]})
    assert check.numbers["s.ngram_overlap"] == pytest.approx(1 / 7)
    assert check.passed  # a seventh of its 13-grams: a near-copy signal, not a contaminated probe
    strict = contamination_check(train, {"s": [probe]}, ngram=8)
    assert strict.numbers["s.ngram_overlap"] == pytest.approx(6 / 12) and not strict.passed
    assert strict.numbers["s.contaminated_share"] == 1.0


def test_fresh_dev_agreement_passes_when_verdicts_hold() -> None:
    thresholds = {"python": ("retained", 0.30)}
    check = compare_check("fresh_dev_agreement", {"python": _m(0.55)}, {"python": _m(0.48)}, thresholds, "fresh")
    assert check.passed and check.numbers == {"python.base": 0.55, "python.fresh": 0.48}
    retired = {"python": ("retired", 0.05)}
    floor = _m(0.0, 0.0, 0.03)
    assert compare_check("fresh_dev_agreement", {"python": floor}, {"python": floor}, retired, "fresh").passed


def test_require_parity_names_differing_scorer_versions() -> None:
    a = make_report()
    harness = a.harness.model_copy(update={"scorers": {"cobol_compile": "cobc 3.2"}, "probe_digests": {"python": "p", "cobol": "x"}})
    b = a.model_copy(update={"harness": harness, "harness_hash": harness.config_hash()})
    with pytest.raises(RefusedError, match=r"probe_digests\[cobol\], scorers\[cobol_compile\]") as info:
        require_parity(a, b)
    assert a.harness_hash in str(info.value) and b.harness_hash in str(info.value)


def test_contamination_means_a_copy_of_one_text_not_shared_boilerplate() -> None:
    words = [f"w{i}" for i in range(60)]
    a = " ".join(words[:30] + [f"a{i}" for i in range(30)])
    b = " ".join([f"b{i}" for i in range(30)] + words[30:])
    stitched = " ".join(words)  # its first half is in a, its second half in b: no one text holds half
    renamed = a.replace("w5 ", "renamed ")  # one name changed: still a copy of a
    check = contamination_check([a, b], {"stitched": [stitched], "renamed": [renamed]})
    assert check.numbers["stitched.contaminated_share"] == 0.0
    assert check.numbers["stitched.ngram_overlap"] == pytest.approx(36 / 48)  # 18 + 18 of 48 seen
    assert check.numbers["renamed.contaminated_share"] == 1.0
    assert not check.passed and "renamed 1/1" in check.detail
