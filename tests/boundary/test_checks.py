"""Checks on constructed measurements: they fail on a significant shift, not only on a crossing."""

from __future__ import annotations

import pytest

from kernel_lifecycle.boundary.checks import (
    contamination_check,
    generalization_check,
    require_parity,
    scorer_parity_check,
    truncation_check,
)
from kernel_lifecycle.boundary.report import ProblemResult, SkillMetrics
from kernel_lifecycle.errors import RefusedError
from tests.factories import make_report


def _m(passes: list[int], *, truncated: float = 0.0, split: str = "test", prefix: str = "p") -> SkillMetrics:
    n = len(passes)
    value = sum(passes) / n
    return SkillMetrics(
        skill="python", scorer="python_tests", metric="pass_rate", split=split, n_problems=n, n_samples=1, k=1,
        value=value, ci_low=max(0.0, value - 0.1), ci_high=min(1.0, value + 0.1), mean_entropy=0.3,
        truncation_rate=truncated, problems=[ProblemResult(task_id=f"{prefix}/{i}", n=1, c=c) for i, c in enumerate(passes)],
    )


def test_truncation_fails_on_a_significant_shift_at_2x_even_without_a_crossing():
    # 0.36 -> 0.55 on 100 problems: 19 problems gain, none lose; both values above a 0.30 floor
    before = [1] * 36 + [0] * 64
    after = [1] * 36 + [1] * 19 + [0] * 45
    check = truncation_check({"python": _m(before)}, {"python": _m(after)}, alpha=0.05, max_truncated_share=0.05)
    assert not check.passed and "moves significantly" in check.detail
    assert check.numbers["python.p_value"] < 1e-4


def test_truncation_passes_a_change_within_noise():
    before = [1] * 36 + [0] * 64
    after = [1] * 37 + [0] * 63
    check = truncation_check({"python": _m(before)}, {"python": _m(after)}, alpha=0.05, max_truncated_share=0.05)
    assert check.passed and check.numbers["python.p_value"] == 1.0


def test_truncation_fails_when_2x_is_still_truncated():
    same = [1] * 10 + [0] * 90
    check = truncation_check({"python": _m(same, truncated=1.0)}, {"python": _m(same, truncated=1.0)}, alpha=0.05, max_truncated_share=0.05)
    assert not check.passed and "still cut off at 2x" in check.detail
    ok = truncation_check({"python": _m(same, truncated=0.3)}, {"python": _m(same, truncated=0.04)}, alpha=0.05, max_truncated_share=0.05)
    assert ok.passed


def test_a_retired_skill_rambling_to_the_budget_counts_as_absent_unless_2x_brings_it_back():
    from kernel_lifecycle.boundary.checks import with_retired_truncation

    none = [0] * 100
    rambling = truncation_check({"python": _m(none, truncated=0.7)}, {"python": _m(none, truncated=0.45)}, alpha=0.05, max_truncated_share=0.05)
    assert not rambling.passed  # judged as a retained skill: the measurement is not one
    (judged,) = with_retired_truncation([rambling], retired=["python"], alpha=0.05, max_truncated_share=0.05)
    assert judged.passed and "45% still cut off at 2x without coming back; counted as absent" in judged.detail
    assert judged.numbers == rambling.numbers
    # 0 -> 19 of 100 at 2x: the skill was only behind the budget
    back = truncation_check({"python": _m(none, truncated=0.7)}, {"python": _m([1] * 19 + [0] * 81, truncated=0.45)},
                            alpha=0.05, max_truncated_share=0.05, retired=["python"])
    assert not back.passed and "retired, and back at 2x budget (19 problems up, 0 down" in back.detail
    # fewer compiling at 2x is no return
    fewer = truncation_check({"python": _m([1] * 19 + [0] * 81)}, {"python": _m(none)}, alpha=0.05, max_truncated_share=0.05, retired=["python"])
    assert fewer.passed


def test_generalization_fails_on_a_large_gap_and_reports_it_either_way():
    gate = _m([1] * 70 + [0] * 30)
    fresh = _m([1] * 31 + [0] * 69, split="fresh", prefix="f")
    check, gaps = generalization_check({"python": gate}, {"python": fresh}, tolerance=0.10, alpha=0.05)
    assert not check.passed and "significantly above tolerance" in check.detail
    assert gaps["python"].gap == pytest.approx(0.39) and gaps["python"].low > 0.10
    near = _m([1] * 66 + [0] * 34, split="fresh", prefix="f")
    check, gaps = generalization_check({"python": gate}, {"python": near}, tolerance=0.10, alpha=0.05)
    assert check.passed and gaps["python"].low < 0.04 < gaps["python"].high
    assert check.numbers["python.gap"] == pytest.approx(0.04)


def test_generalization_does_not_fail_a_gap_within_tolerance_however_certain():
    gate = _m([1] * 150 + [0] * 50)
    fresh = _m([1] * 140 + [0] * 60, split="fresh", prefix="f")  # gap 0.05 < 0.10
    check, _ = generalization_check({"python": gate}, {"python": fresh}, tolerance=0.10, alpha=0.05)
    assert check.passed


def test_scorer_parity_needs_every_reference_accepted():
    assert scorer_parity_check({"python": (8, 8)}).passed
    broken = scorer_parity_check({"python": (3, 8)})
    assert not broken.passed and "3/8" in broken.detail
    assert not scorer_parity_check({"python": (0, 0)}).passed


def test_require_parity_names_the_differing_fields() -> None:
    a, b = make_report(), make_report(max_new_tokens=320)
    require_parity(a, make_report())
    with pytest.raises(RefusedError, match="max_new_tokens"):
        require_parity(a, b)


def test_require_parity_names_differing_scorer_versions() -> None:
    a = make_report()
    harness = a.harness.model_copy(update={"scorers": {"cobol_compile": "cobc 3.2"}, "probe_digests": {"python": "p", "cobol": "x"}})
    b = a.model_copy(update={"harness": harness, "harness_hash": harness.config_hash()})
    with pytest.raises(RefusedError, match=r"probe_digests\[cobol\], scorers\[cobol_compile\]") as info:
        require_parity(a, b)
    assert a.harness_hash in str(info.value) and b.harness_hash in str(info.value)


def test_contamination_detects_leaked_probes() -> None:
    train = [f"def add_{i}(x):\n    return x + {i} * {i} - {2 * i} // 3 + {i % 7}\n" for i in range(50)]
    clean = [f"def mul_{i}(y):\n    return y * {i} - {i} + {3 * i} % 5 - {i // 2}\n" for i in range(20)]
    python = {"python": "python"}
    check = contamination_check(train, {"python": clean}, languages=python)
    assert check.passed and check.numbers["python.contaminated_share"] == 0.0
    leaked = contamination_check(train, {"python": clean + train[:5]}, languages=python)
    assert not leaked.passed and leaked.numbers["python.contaminated_share"] == pytest.approx(0.2)
    assert "python 5/25" in leaked.detail and "limit 10%" in leaked.detail

def test_contamination_fails_only_above_max_share() -> None:
    train = ["SELECT name FROM items WHERE price > 30;"]
    probes = ["select title from books where cost > 7;"] + [f"SELECT AVG(n{i}) FROM t{i};" for i in range(9)]
    sql = {"s": "sql_exec"}  # a scorer name reads as its language
    at = contamination_check(train, {"s": probes}, languages=sql)
    assert at.passed and at.numbers["s.contaminated_share"] == pytest.approx(0.1)
    assert not contamination_check(train, {"s": probes}, languages=sql, max_share=0.05).passed
    assert not contamination_check(train, {"s": probes[:5]}, languages=sql).passed  # 1 of 5


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
