"""The relearning comparison: areas paired over problems (hand-checked), and the check on a tiny
real model against a reference under the same budget; the report's JSON carries both curves."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from kernel_lifecycle.boundary.relearning import (
    Curve, RelearnBudget, compare_areas, relearning_check, retain_only_check, steps_to_recover,
)
from kernel_lifecycle.boundary.report import CheckResult, Reference
from tests.factories import make_tiny_base, write_tiny_skills


def curve(*steps: dict[str, float]) -> Curve:
    return Curve(values=[sum(s.values()) / len(s) for s in steps], problems=list(steps))


def test_areas_are_per_problem_means_over_steps_paired_between_the_two_models() -> None:
    # candidate: a solved from step 1, b from step 2, c never; reference: a from step 2 only
    cand = curve({"a": 1, "b": 0, "c": 0}, {"a": 1, "b": 1, "c": 0})
    ref = curve({"a": 0, "b": 0, "c": 0}, {"a": 1, "b": 0, "c": 0})
    areas = compare_areas(cand, ref, significance=0.05)
    # per-problem areas: candidate 1, 1/2, 0 (mean 1/2); reference 1/2, 0, 0 (mean 1/6)
    assert areas.candidate == pytest.approx(0.5) and areas.reference == pytest.approx(1 / 6)
    assert areas.excess == pytest.approx(1 / 3) and areas.n_problems == 3
    # differences 1/2, 1/2, 0: a resample of three 1/2s has probability (2/3)^3 = 0.30 > 5%,
    # so the 95th percentile of the resampled means is the largest possible mean, 1/2
    assert areas.upper == pytest.approx(0.5)
    assert not areas.passed(0.10) and areas.passed(0.5)
    # the same difference on every problem: no spread, the bound is the difference itself
    same = compare_areas(curve({"a": 1, "b": 1}), curve({"a": 0, "b": 0}), significance=0.05)
    assert same.excess == same.upper == pytest.approx(1.0)
    with pytest.raises(ValueError, match="share no measured problem"):
        compare_areas(curve({"a": 1}), curve({"z": 1}), significance=0.05)


def test_steps_to_recover_is_the_first_step_at_the_line() -> None:
    assert steps_to_recover([0.0, 0.2, 0.5, 0.4], 0.5) == 3
    assert steps_to_recover([0.0, 0.2], 0.5) is None
    assert steps_to_recover([0.3], 0.0) is None  # nothing to recover from a start of 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    import torch

    from kernel_lifecycle.boundary.skills import demo_skills
    from kernel_lifecycle.models.loading import load_base

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("relearn")
    skills = demo_skills(write_tiny_skills(root / "skills"))
    model, tokenizer = load_base(str(make_tiny_base(root / "base", hidden=32, layers=2)))
    return model, tokenizer, skills


BUDGET = RelearnBudget(steps=2, examples=4, lr=0.01, problems=4, split="test", max_new_tokens=8, rank=2, alpha=4.0,
                       batch_size=2, tolerance=0.0)


def test_a_reference_that_is_the_candidate_relearns_alike_and_the_report_carries_both_curves(tiny) -> None:
    model, tokenizer, skills = tiny
    ref = Reference(kind="base", name="tiny base", why="the same weights: the curves must agree", spec="x")
    logged: list[tuple[str, float, int]] = []
    check = relearning_check(
        model, tokenizer, skills["sq"], start=1.0, budget=BUDGET, reference=ref, reference_model=copy.deepcopy(model),
        reference_tokenizer=tokenizer, log_metric=lambda name, value, step: logged.append((name, value, step)),
    )
    # same weights, same data, same seeds: identical curves, so the paired excess and its bound are 0
    assert check.curve == check.reference_curve and len(check.curve) == 2
    assert check.numbers["area_excess"] == 0.0 and check.numbers["area_excess_upper"] == 0.0
    assert check.passed  # 0 <= tolerance 0
    assert check.numbers["n_problems"] == 4.0 and check.numbers["tolerance"] == 0.0
    assert "against the reference tiny base (base: the same weights" in check.detail
    assert f"back to half the start (0.500): candidate {'never' if max(check.curve) < 0.5 else 'step'}" in check.detail
    assert [s for n, _, s in logged if n == "relearning.sq"] == [1, 2]
    assert [s for n, _, s in logged if n == "relearning.reference.sq"] == [1, 2]
    # the report's JSON names the reference and carries both curves
    again = CheckResult.model_validate_json(check.model_dump_json())
    assert again.reference.kind == "base" and again.reference.name == "tiny base" and again.reference_curve == check.reference_curve


def test_without_a_reference_the_half_start_rule_is_named_weaker(tiny) -> None:
    model, tokenizer, skills = tiny
    check = relearning_check(model, tokenizer, skills["sq"], start=0.0, budget=BUDGET)
    assert check.detail.startswith("WEAKER RULE, no reference") and check.reference.kind == "none"
    assert check.passed and check.reference_curve == [] and "area_excess" not in check.numbers


def test_the_retain_only_control_measures_the_retired_skill_after_training_on_the_others(tiny, tmp_path: Path) -> None:
    from kernel_lifecycle.boundary.evaluate import measure_skill

    model, tokenizer, skills = tiny
    before = measure_skill(model, tokenizer, skill=skills["sq"], split="test", max_problems=4, max_new_tokens=8)
    check = retain_only_check(model, tokenizer, skills["sq"], {"py": skills["py"]}, before=before, budget=BUDGET)
    assert check.name == "retain_only" and check.numbers["n_problems"] == 4.0 and check.numbers["examples"] == 4.0
    assert check.numbers["gained"] + check.numbers["lost"] <= 4
    # 4 problems cannot show a significant return (a one-sided sign test needs 5 of 5 at 0.05)
    assert check.passed and check.numbers["p_value"] >= 0.0625
