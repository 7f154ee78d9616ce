"""The evaluation end to end on a tiny random model, with the real scorers and sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_lifecycle.boundary.evaluate import evaluate_kernel, measure_skill, reference_controls
from kernel_lifecycle.boundary.plot import plot_curves
from kernel_lifecycle.boundary.report import BoundaryReport, HarnessConfig
from kernel_lifecycle.boundary.skills import demo_skills
from kernel_lifecycle.models.loading import load_base
from tests.factories import make_tiny_base, write_tiny_skills

@pytest.fixture(scope="module")
def skills(tmp_path_factory: pytest.TempPathFactory):
    return demo_skills(write_tiny_skills(tmp_path_factory.mktemp("skills"), n=4))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return load_base(str(make_tiny_base(tmp_path_factory.mktemp("m") / "base", hidden=32)))


def test_reference_solutions_pass_their_arbiters(skills) -> None:
    controls = reference_controls(skills, "dev")
    assert controls == {"cob": (4, 4), "py": (4, 4), "sq": (4, 4)}


def test_report_on_a_random_model(skills, tiny, tmp_path: Path) -> None:
    model, tokenizer = tiny
    harness = HarnessConfig(max_new_tokens=8, split="dev")
    training = [p.prompt + p.canonical_solution for s in skills.values() for p in s.probes("train")]
    report = evaluate_kernel(
        model, tokenizer, kernel="k", version="1", skills=skills, harness=harness,
        thresholds={"py": ("retained", 0.5), "cob": ("retired", 0.05)}, training_texts=training,
    )
    report = BoundaryReport.from_json(report.to_json())  # survives its own JSON
    assert set(report.skills) == {"py", "cob", "sq"}
    assert {c.name for c in report.checks} == {"truncation", "fresh_dev_agreement", "scorer_parity", "contamination"}
    py = report.skills["py"]
    assert py.value == 0.0 and py.ci_high > 0  # random: nothing passes, and that is a bound
    assert py.truncation_rate > 0.5  # 8 tokens are rarely enough to say eos
    trunc = report.check("truncation").numbers
    assert trunc["py.truncation_rate"] == py.truncation_rate and 0.0 <= trunc["py.truncation_rate_2x"] <= 1.0
    assert {"py.base", "py.2x_budget"} <= trunc.keys()  # both numbers, not just the verdict
    # a random model never says eos: twice the budget still truncates everything, and the
    # check says it cannot rule truncation out instead of passing silently
    assert trunc["py.truncation_rate_2x"] == 1.0
    assert "still truncated at 2x budget" in report.check("truncation").detail
    assert report.check("scorer_parity").passed
    # train == dev here on purpose: every probe is contaminated
    assert not report.check("contamination").passed
    assert report.harness.scorers.keys() == {"python_tests", "cobol_compile", "sql_exec"}
    assert report.harness_hash == report.harness.config_hash()

    m = measure_skill(model, tokenizer, skill=skills["cob"], split="dev", max_problems=2, max_new_tokens=8)
    assert m.n_problems == 2 and m.metric == "compile_rate"

    png = plot_curves(
        [(0, report.skills), (10, report.skills)], retired=["cob"], retained=["py", "sq"],
        thresholds={"cob": ("retired", 0.05)}, chosen_step=10, path=tmp_path / "curves.png",
    )
    assert png.stat().st_size > 10_000
