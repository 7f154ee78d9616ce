"""distill -> upskill -> downskill on tiny real assets: real training steps, real MLflow runs,
real scorers; the numbers are meaningless (a random model), the machinery is what is tested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_lifecycle.boundary.report import HarnessConfig
from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.errors import BundleError, JobError, NotFoundError
from kernel_lifecycle.jobs import run_job
from kernel_lifecycle.jobs.config import DistillConfig, DownskillConfig, Thresholds, UpskillConfig
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.registry.tracking import client as mlflow_client
from kernel_lifecycle.settings import get_settings
from tests.factories import make_tiny_base, write_tiny_skills

HARNESS = HarnessConfig(max_new_tokens=12, split="test")


@pytest.fixture
def world(kl_home, monkeypatch, tmp_path, db_url):
    from kernel_lifecycle.db.engine import upgrade

    monkeypatch.setenv("KL_SKILLS_DIR", str(write_tiny_skills(tmp_path / "skills")))
    get_settings.cache_clear()
    upgrade()
    return {"teacher": make_tiny_base(tmp_path / "teacher", hidden=32, layers=2)}


def _distill(world) -> str:
    spec = DistillConfig(
        kernel="tiny", skills=["py", "cob"], teacher=str(world["teacher"]), steps=4, batch_size=4,
        eval_every=2, eval_problems=2, harness=HARNESS, report_skills=["py", "cob", "sq"],
    )
    return run_job(spec, actor="test").version


def test_lifecycle_on_tiny_assets(world) -> None:
    v1 = _distill(world)
    assert v1 == "1"
    kv1 = registry.get_version("tiny", v1)
    assert kv1.tags["kernel.base_uri"].startswith("runs:/")
    run = mlflow_client().get_run(kv1.run_id)
    assert {"boundary.py.value", "boundary.cob.ci_high", "check.truncation"} <= set(run.data.metrics)
    assert {"teacher", "student_layers", "harness"} <= set(run.data.params)
    assert json.loads(run.data.params["harness"])["max_new_tokens"] == 12 and run.data.params["student_layers"] == "1"
    history = mlflow_client().get_metric_history(kv1.run_id, "curve.learn.py")
    assert [m.step for m in history] == [2, 4]
    losses = mlflow_client().get_metric_history(kv1.run_id, "train.loss")  # batched, none lost
    assert sorted(m.step for m in losses) == [1, 2, 3, 4] and all(m.value > 0 for m in losses)
    contexts = {d.dataset.name: {t.key: t.value for t in d.tags}["mlflow.data.context"] for d in run.inputs.dataset_inputs}
    assert {n for n, c in contexts.items() if c == "training"} == {"py/train", "cob/train"}
    assert {"py/test", "cob/fresh", "sq/test"} <= set(contexts)  # the report's probe sets, each once

    upskill = UpskillConfig(kernel="tiny", skill="sq", replay=["py"], steps=4, batch_size=4, eval_every=2, rank=4, alpha=5,
                            eval_problems=2, harness=HARNESS, from_ref="tiny@1", report_skills=["py", "cob", "sq"])
    # the config crosses a process boundary as JSON (the Ray executor, job params)
    v2 = run_job(upskill.model_dump_json(), actor="test").version
    kv2 = registry.get_version("tiny", v2)
    assert kv2.parent_version == "1" and ":upskill:sq:" in kv2.tags["kernel.adapters"]

    (adapter,) = (registry.fetch_bundle(kv2) / "adapters").iterdir()
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (4, 5)  # the config's alpha, not 2 x rank

    # the teacher says what it was pretrained on (a build.json, as the demo base's): never cob, so
    # it is the reference the relearning is compared with (v1 and v2 both inherit v1's cob)
    (world["teacher"] / "build.json").write_text(json.dumps({"pretrain_probes": {"py": 4, "sq": 4}}))
    spec = DownskillConfig(
        kernel="tiny", skill="cob", retain=["py", "sq"], method="npo", steps=4, batch_size=4, eval_every=2,
        eval_problems=4, relearn_steps=2, harness=HARNESS, from_ref="tiny@2", report_skills=["py", "cob", "sq"],
        thresholds=Thresholds(ceilings={"cob": 0.9}, tolerance={"py": 0.5, "sq": 0.5}),
    )
    v3 = run_job(spec, actor="test").version
    kv3 = registry.get_version("tiny", v3)
    assert kv3.tags["kernel.skills.retired"] == "cob"
    assert kv3.tags["kernel.adapters"].count(">") == 1  # upskill > downskill, in order
    assert [v.version for v in registry.lineage("tiny", v3)] == ["3", "2", "1"]
    forget_curve = mlflow_client().get_metric_history(kv3.run_id, "curve.forget.cob")
    assert [m.step for m in forget_curve] == [0, 2, 4]
    artifacts = {a.path for a in mlflow_client().list_artifacts(kv3.run_id, "boundary")}
    assert {"boundary/report.json", "boundary/curves.png", "boundary/relearning.png"} <= artifacts
    from kernel_lifecycle.boundary.tracking import load_version_report

    report = load_version_report(kv3)
    relearning = report.check("relearning")
    assert relearning.reference.kind == "base" and relearning.reference.spec == str(world["teacher"])
    assert len(relearning.curve) == len(relearning.reference_curve) == 2  # the same budget on both
    assert {"area_candidate", "area_reference", "area_excess_upper", "tolerance"} <= set(relearning.numbers)
    assert relearning.passed == (relearning.numbers["area_excess_upper"] <= relearning.numbers["tolerance"])
    assert report.check("retain_only").numbers["steps"] == 2.0
    membership = report.check("membership")
    assert membership.passed and 0.0 <= membership.numbers["auc"] <= 1.0  # reported, not gated
    assert [m.step for m in mlflow_client().get_metric_history(kv3.run_id, "relearning.reference.cob")] == [1, 2]
    with session_scope() as session:
        jobs = repo.list_jobs(session, kernel="tiny")
        assert sorted(j.state for j in jobs) == ["registered"] * 3
        assert repo.get_alias(session, kernel="tiny", alias="candidate") == v3
        assert repo.get_alias(session, kernel="tiny", alias="champion") is None  # jobs never move it


def test_bad_input_fails_before_training(world, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not found: no such directory"):
        run_job(DistillConfig(kernel="x", skills=["py"], teacher=str(tmp_path / "missing")), actor="t")
    with pytest.raises(NotFoundError, match="unknown unlearning method 'forgetful'"):
        DownskillConfig(kernel="x", skill="cob", retain=["py"], method="forgetful")
    with pytest.raises(NotFoundError, match="unknown skill 'klingon'"):
        run_job(UpskillConfig(kernel="x", skill="klingon", replay=[]), actor="t")
    (Path(get_settings().skills_dir) / "sq" / "train.jsonl").write_text("")
    with pytest.raises(JobError, match="empty train split"):
        run_job(UpskillConfig(kernel="x", skill="sq", replay=["py"]), actor="t")
    with session_scope() as session:
        assert repo.list_jobs(session) == []
    assert not registry.kernel_exists("x")


def test_boundary_not_reached_registers_nothing(world) -> None:
    _distill(world)
    spec = DownskillConfig(
        kernel="tiny", skill="cob", retain=["py"], steps=2, batch_size=4, eval_every=1, eval_problems=2,
        harness=HARNESS, thresholds=Thresholds(ceilings={"cob": 0.0}),  # 0/2 has upper bound 0.78 > 0
        from_ref="tiny@1",
    )
    with pytest.raises(JobError, match="no checkpoint reached the boundary"):
        run_job(spec, actor="test")
    assert [v.version for v in registry.list_versions("tiny")] == ["1"]
    with session_scope() as session:
        failed = [j for j in repo.list_jobs(session, kernel="tiny") if j.kind == "downskill"]
        assert failed[0].state == "failed" and "boundary" in failed[0].error


def test_a_localized_downskill_places_its_adapter_on_the_retired_skills_heads(world) -> None:
    v1 = _distill(world)
    spec = DownskillConfig(
        kernel="tiny", skill="cob", retain=["py"], steps=2, batch_size=4, eval_every=1, eval_problems=2,
        relearn_steps=1, harness=HARNESS, from_ref=f"tiny@{v1}", target="localized", target_heads=1,
        thresholds=Thresholds(ceilings={"cob": 0.99}, tolerance={"py": 1.0}),
    )
    kv = registry.get_version("tiny", run_job(spec, actor="test").version)

    target = json.loads(kv.tags["kernel.target"])
    assert target["target"] == "localized" and len(target["heads"]) >= 1, target
    artifacts = {a.path for a in mlflow_client().list_artifacts(kv.run_id, "localize")}
    assert "localize/cob.json" in artifacts


def test_step_metrics_reach_mlflow_in_batches_and_survive_a_failed_training(world, tmp_path) -> None:
    from kernel_lifecycle.jobs.runner import JobContext
    from kernel_lifecycle.registry.tracking import experiment_id

    run = mlflow_client().create_run(experiment_id())
    ctx = JobContext(job_id="j", kind="upskill", kernel="tiny", run_id=run.info.run_id, actor="test", workdir=tmp_path)
    with pytest.raises(RuntimeError, match="diverged"):
        with ctx.step_metric("train.loss", flush_every=2) as on_step:
            for step in range(1, 6):
                on_step(step, 1.0 / step, {})
                if step == 2:  # the first batch went out as soon as it was full
                    assert len(mlflow_client().get_metric_history(run.info.run_id, "train.loss")) == 2
            raise RuntimeError("diverged")
    history = mlflow_client().get_metric_history(run.info.run_id, "train.loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(s, 1.0 / s) for s in range(1, 6)]


def test_adapt_registers_the_base_unchanged_plus_one_adapter(world) -> None:
    """adapt: a kernel's first version from a pretrained base (here a tiny one) and a LoRA adapter;
    the manifest references the base by its spec and weights' sha256, the adapter loads back, and
    a second adapt of the same kernel is refused before anything trains."""
    from kernel_lifecycle.jobs.config import AdaptConfig
    from kernel_lifecycle.models.loading import base_sha256, load_kernel
    from kernel_lifecycle.registry.bundle import read_manifest

    spec = AdaptConfig(
        kernel="tiny-adapted", base=str(world["teacher"]), skills=["py", "cob"], steps=2, batch_size=4, eval_every=2,
        eval_problems=2, rank=4, harness=HARNESS, report_skills=["py", "cob", "sq"],
    )
    kv = registry.get_version("tiny-adapted", run_job(spec, actor="test").version)
    assert kv.version == "1" and kv.tags["kernel.job_kind"] == "adapt"
    bundle = registry.fetch_bundle(kv)
    manifest = read_manifest(bundle)
    assert manifest.base.uri == str(world["teacher"]) and manifest.base.sha256 == base_sha256(world["teacher"])
    assert [(a.role, a.skill) for a in manifest.adapters] == [("adapt", "py-cob")]
    assert manifest.retained_skills == ["py", "cob"] and manifest.parent_version is None
    loaded = load_kernel(bundle)
    assert loaded.model.config.num_hidden_layers == 2  # the base whole: adapt keeps every layer
    run = mlflow_client().get_run(kv.run_id)
    assert run.data.params["base"] == str(world["teacher"])
    with pytest.raises(JobError, match="already has versions; adapt creates"):
        run_job(spec, actor="test")
