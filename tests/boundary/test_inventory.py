"""Skill inventory: the library on a model passed directly, diffs under parity, the CLI on a registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_lifecycle.boundary.inventory import (
    INVENTORY_COLUMNS,
    change,
    diff_rows,
    inventory_harness,
    inventory_report,
    inventory_rows,
)
from kernel_lifecycle.boundary.report import ProblemResult
from kernel_lifecycle.boundary.skills import demo_skills
from kernel_lifecycle.errors import RefusedError
from kernel_lifecycle.models.loading import load_base
from tests.factories import make_bundle, make_report, make_tiny_base, write_tiny_skills


@pytest.fixture(scope="module")
def skills_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_skills(tmp_path_factory.mktemp("skills"), n=3)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_base(tmp_path_factory.mktemp("m") / "base", hidden=32, layers=2)


def test_inventory_of_a_model_passed_directly(skills_root: Path, base_dir: Path) -> None:
    model, tokenizer = load_base(str(base_dir))
    harness = inventory_harness(max_problems=2, max_new_tokens=6)
    report = inventory_report(model, tokenizer, kernel="k", version="1", harness=harness, skills=demo_skills(skills_root))
    assert set(report.skills) == {"py", "cob", "sq"}
    assert all(m.n_problems == 2 for m in report.skills.values())
    assert {c.name for c in report.checks} == {"truncation", "generalization", "scorer_parity"}
    rows = inventory_rows(report)
    assert [r[0] for r in rows] == ["cob", "py", "sq"] and all(len(r) == len(INVENTORY_COLUMNS) for r in rows)
    # a random model passes nothing, and the table says so as a bound, never "0%"
    assert rows[1][2] == "below 77.6% (0/2)"
    assert diff_rows(report, report)[1][4:] == ["+0.0 pts", "[+0.0, +0.0] pts", ""]


def test_diff_is_paired_and_refused_across_harnesses() -> None:
    before, after = make_report(python_passes=40), make_report(python_passes=52)
    rows = {r[0]: r for r in diff_rows(before, after)}
    assert rows["python"][4] == "+20.0 pts" and rows["python"][6] == "*"
    assert rows["cobol"][6] == ""  # 0 -> 0
    with pytest.raises(RefusedError, match="max_new_tokens"):
        diff_rows(before, make_report(max_new_tokens=512))


def test_change_is_unpaired_when_problems_differ() -> None:
    a, b = make_report().skills["python"], make_report(python_passes=30).skills["python"]
    b = b.model_copy(update={"problems": [ProblemResult(task_id=f"other/{i}", n=1, c=1) for i in range(3)]})
    diff, low, high, significant = change(a, b)
    assert diff == pytest.approx(-0.4) and low != low  # NaN: no paired interval exists
    assert significant == (a.ci_low > b.ci_high)


def test_inventory_cli_on_registered_versions(
    kl_home: Path, monkeypatch: pytest.MonkeyPatch, skills_root: Path, base_dir: Path, tmp_path: Path, capsys
) -> None:
    from kernel_lifecycle.cli.app import run
    from kernel_lifecycle.registry import client as registry
    from kernel_lifecycle.settings import get_settings

    monkeypatch.setenv("KL_SKILLS_DIR", str(skills_root))
    get_settings.cache_clear()
    registry.register_version(make_bundle(tmp_path / "v1", kernel="inv-kernel", base_dir=base_dir))
    registry.register_version(make_bundle(tmp_path / "v2", kernel="inv-kernel", parent="1", base_dir=base_dir, n_adapters=2))
    capsys.readouterr()

    args = ["boundary", "inventory", "inv-kernel@2", "--diff", "1", "--max-problems", "2", "--max-new-tokens", "6"]
    assert run([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["report"]["version"] == "2" and data["diff"]["against"]["version"] == "1"
    assert set(data["report"]["skills"]) == {"py", "cob", "sq"}
    assert data["report"]["harness_hash"] == data["diff"]["against"]["harness_hash"]
    assert {r["skill"] for r in data["diff"]["rows"]} == {"py", "cob", "sq"}

    assert run(args) == 0
    out = capsys.readouterr().out
    assert "skill inventory of inv-kernel@2" in out and "v1 -> v2" in out and "truncation" in out

    assert run([*args[:3], "--max-problems", "2", "--max-new-tokens", "6", "--by-family", "--json"]) == 0
    families = json.loads(capsys.readouterr().out)["families"]
    assert {(f["skill"], f["split"]) for f in families} >= {("py", "test"), ("py", "fresh")}

    assert run(["boundary", "inventory", "inv-kernel"]) == 1  # no champion yet
    assert "no version with alias 'champion'" in capsys.readouterr().err
