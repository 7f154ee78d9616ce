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
    python = {"python": "python"}
    check = contamination_check(train, {"python": clean}, languages=python)
    assert check.passed and check.numbers["python.contaminated_share"] == 0.0
    leaked = contamination_check(train, {"python": clean + train[:5]}, languages=python)
    assert not leaked.passed and leaked.numbers["python.contaminated_share"] == pytest.approx(0.2)
    assert "python 5/25" in leaked.detail and "limit 10%" in leaked.detail


def test_require_parity_names_the_differing_fields() -> None:
    a, b = make_report(), make_report(max_new_tokens=320)
    require_parity(a, make_report())
    with pytest.raises(RefusedError, match="max_new_tokens"):
        require_parity(a, b)


def test_contamination_fails_only_above_max_share() -> None:
    train = ["SELECT name FROM items WHERE price > 30;"]
    probes = ["select title from books where cost > 7;"] + [f"SELECT AVG(n{i}) FROM t{i};" for i in range(9)]
    sql = {"s": "sql_exec"}  # a scorer name reads as its language
    at = contamination_check(train, {"s": probes}, languages=sql)
    assert at.passed and at.numbers["s.contaminated_share"] == pytest.approx(0.1)
    assert not contamination_check(train, {"s": probes}, languages=sql, max_share=0.05).passed
    assert not contamination_check(train, {"s": probes[:5]}, languages=sql).passed  # 1 of 5


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


def test_contamination_means_a_copy_of_one_text_not_shared_pieces() -> None:
    a = "def f(x):\n    y = x * 2\n    return y + 1\n"
    b = "def g(xs):\n    n = len(xs)\n    return n - 3\n"
    stitched = "def h(x):\n    y = x * 2\n    return y - 3\n"  # a's first half, b's second: no one text
    renamed = "def other(v):\n    w = v * 5\n    return w + 9\n"  # a, names and numbers changed
    check = contamination_check([a, b], {"stitched": [stitched], "renamed": [renamed]},
                                languages={"stitched": "python", "renamed": "python"})
    assert check.numbers["stitched.contaminated_share"] == 0.0
    assert check.numbers["renamed.contaminated_share"] == 1.0
    assert not check.passed and "renamed 1/1" in check.detail
