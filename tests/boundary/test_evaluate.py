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
    harness = HarnessConfig(max_new_tokens=8, split="test")
    training = {name: s.probes("train") for name, s in skills.items()}
    report = evaluate_kernel(model, tokenizer, kernel="k", version="1", skills=skills, harness=harness, training_probes=training)
    report = BoundaryReport.from_json(report.to_json())  # survives its own JSON
    assert set(report.skills) == {"py", "cob", "sq"}
    assert (report.selection_split, report.gate_split) == ("dev", "test")
    assert {m.split for m in report.skills.values()} == {"test"} and {m.split for m in report.fresh.values()} == {"fresh"}
    assert set(report.gaps) == {"py", "cob", "sq"} and report.gaps["py"].low <= report.gaps["py"].gap <= report.gaps["py"].high
    assert {c.name for c in report.checks} == {"truncation", "generalization", "scorer_parity", "contamination"}
    py = report.skills["py"]
    assert py.value == 0.0 and py.ci_high > 0  # random: nothing passes, and that is a bound
    assert py.truncation_rate > 0.5  # 8 tokens are rarely enough to say eos
    trunc = report.check("truncation").numbers
    assert trunc["py.truncation_rate"] == py.truncation_rate and 0.0 <= trunc["py.truncation_rate_2x"] <= 1.0
    assert {"py.value", "py.value_2x", "py.p_value"} <= trunc.keys()  # the numbers, not just the verdict
    # a random model never says eos: twice the budget still truncates everything, and the
    # check says it cannot rule truncation out instead of passing silently
    assert trunc["py.truncation_rate_2x"] == 1.0
    assert "still cut off at 2x" in report.check("truncation").detail and not report.check("truncation").passed
    assert report.check("scorer_parity").passed
    # train == fresh here on purpose: every fresh probe is contaminated
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
