"""The canonical solutions through the same metric path as a model, and a report into MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_lifecycle.boundary.evaluate import oracle_metrics
from kernel_lifecycle.boundary.report import BoundaryReport
from kernel_lifecycle.boundary.skills import demo_skills
from tests.factories import make_report, write_tiny_skills


@pytest.fixture(scope="module")
def skills(tmp_path_factory: pytest.TempPathFactory):
    return demo_skills(write_tiny_skills(tmp_path_factory.mktemp("skills"), n=5))


def test_oracle_scores_every_reference_solution(skills) -> None:
    for name, skill in skills.items():
        m = oracle_metrics(skill, "dev")
        assert (m.n_problems, m.value, m.ci_high) == (5, 1.0, 1.0), name
        # 5/5 is not "certainly 100%": the exact one-sided lower bound is 0.05 ** (1/5)
        assert m.ci_low == pytest.approx(0.05 ** (1 / 5))
        assert m.truncation_rate == 0.0 and m.no_code_rate == 0.0
        assert all(p.c == p.n == 1 for p in m.problems)


def test_a_broken_reference_is_measured_as_broken(tmp_path: Path) -> None:
    root = write_tiny_skills(tmp_path / "skills", n=5)
    dev = root / "py" / "dev.jsonl"
    probes = [json.loads(line) for line in dev.read_text().splitlines()]
    probes[0]["canonical_solution"] = "    return x - 1000\n"  # wrong answer
    probes[1]["canonical_solution"] = "    return x +\n"  # syntax error
    dev.write_text("".join(json.dumps(p) + "\n" for p in probes))
    m = oracle_metrics(demo_skills(root)["py"], "dev")
    assert m.value == pytest.approx(3 / 5) and m.ci_low < 0.6 < m.ci_high


def test_report_logged_to_mlflow(kl_home: Path) -> None:
    from kernel_lifecycle.boundary.tracking import log_report, log_step_metrics
    from kernel_lifecycle.registry.tracking import client, experiment_id

    mlflow = client()
    run_id = mlflow.create_run(experiment_id()).info.run_id
    report = make_report()
    log_report(report, run_id=run_id)
    log_step_metrics(run_id, report.skills, 0, roles={"cobol": "forget"})
    log_step_metrics(run_id, report.skills, 5, roles={"cobol": "forget"})

    artifacts = {a.path for a in mlflow.list_artifacts(run_id, "boundary")}
    assert artifacts == {"boundary/report.json", "boundary/inventory.png", "boundary/probes.json"}
    from kernel_lifecycle.boundary.tracking import load_probe_table

    rows = load_probe_table(run_id)  # one row per problem of the gate split and fresh
    assert len(rows) == sum(len(m.problems) for m in report.skills.values()) + sum(
        len(m.problems) for n, m in report.fresh.items() if m is not report.skills.get(n))
    local = Path(mlflow.download_artifacts(run_id, "boundary/report.json", str(kl_home)))
    assert BoundaryReport.from_json(local.read_text()).harness_hash == report.harness_hash
    metrics = mlflow.get_run(run_id).data.metrics
    assert metrics["boundary.python.value"] == pytest.approx(0.9)
    assert metrics["boundary.cobol.ci_high"] == pytest.approx(1 - 0.05 ** (1 / 60))
    assert metrics["check.truncation"] == 1.0
    assert [m.step for m in mlflow.get_metric_history(run_id, "curve.forget.cobol")] == [0, 5]
    assert len(mlflow.get_metric_history(run_id, "curve.retain.python.ci_high")) == 2


def test_log_report_needs_a_run(kl_home: Path) -> None:
    from kernel_lifecycle.boundary.tracking import log_report
    from kernel_lifecycle.errors import KernelLifecycleError

    with pytest.raises(KernelLifecycleError, match="no MLflow run"):
        log_report(make_report())
