"""Must-show (2) on the real pipeline: kill -9 of `scheduler run` during a real downskill.

A tiny kernel is distilled for real (tests.factories tiny assets: real training steps, real
MLflow runs, real scorers) and made champion; its policy's cron trigger runs the lead's
``pipeline.run_plan`` (downskill -> boundary evaluation -> gate -> promotion when allowed).
The first scheduler is killed mid-job; after a restart nothing moved for the killed job, the job
and its MLflow run are failed with the reason, and the next fire runs a downskill to the end.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from kernel_lifecycle import aliases
from kernel_lifecycle.db.engine import session_scope, upgrade
from kernel_lifecycle.db.models import AliasState, Job, SchedulerLease
from kernel_lifecycle.scheduler import leases
from kernel_lifecycle.settings import get_settings
from tests.scheduler.procs import scheduler_process, wait_for

POLICY = """schema_version: 1
kernel: tiny
owners: [ml]
skills:
  retained:
    - {name: py, scorer: python_tests, floor: 0.0, tolerance: 1.0}
    - {name: sq, scorer: sql_exec, floor: 0.0, tolerance: 1.0}
  retired:
    - {name: cob, scorer: cobol_compile, ceiling: 0.9, sunset: 2030-01-31}
plans:
  downskill:
    skill: cob
    method: npo
    retain: [py, sq]
    hyperparameters: {steps: 4, batch_size: 4, eval_every: 2}
triggers:
  - {name: tick, kind: cron, cron: "* * * * *", plan: downskill}
gate:
  min_probes: 2
  required_checks: []
  harness: {max_new_tokens: 12, max_problems: 4}
approvals:
  approvers: [alice]
  auto_promote: true
"""
TRIGGER = "tiny:tick:downskill"


def _aliases(url: str) -> dict[tuple[str, str], str]:
    with session_scope(url) as session:
        return {(a.kernel, a.alias): a.version for a in session.scalars(select(AliasState))}


def _state(url: str, job_id: str) -> str:
    with session_scope(url) as session:
        return session.get(Job, job_id).state


def _running(url: str) -> Job | None:
    with session_scope(url) as session:
        return session.scalars(select(Job).where(Job.kind == "downskill", Job.state == "running")).first()


@pytest.mark.slow
def test_kill_9_during_a_real_downskill(postgres_url: str, kl_home: Path, monkeypatch, tmp_path: Path, cli) -> None:  # noqa: ANN001
    from tests.factories import make_tiny_base, write_tiny_skills

    from kernel_lifecycle.boundary.report import HarnessConfig
    from kernel_lifecycle.jobs import run_job
    from kernel_lifecycle.jobs.config import DistillConfig
    from kernel_lifecycle.registry.tracking import client as mlflow_client

    url = postgres_url
    monkeypatch.setenv("KL_DATABASE_URL", url)
    monkeypatch.setenv("KL_SKILLS_DIR", str(write_tiny_skills(tmp_path / "skills")))
    get_settings.cache_clear()
    upgrade(url)
    teacher = make_tiny_base(tmp_path / "teacher", hidden=32, layers=2)
    v1 = run_job(
        DistillConfig(
            kernel="tiny", skills=["py", "cob"], teacher=str(teacher), steps=4, batch_size=4, eval_every=2,
            eval_problems=2, harness=HarnessConfig(max_new_tokens=12, split="test"), report_skills=["py", "cob", "sq"],
        ),
        actor="test",
    ).version
    with session_scope(url) as session:
        aliases.move_alias(session, name="tiny", alias="champion", version=v1, actor="test", reason="setup")
    (tmp_path / "tiny.yaml").write_text(POLICY)
    assert cli("policies", "apply", str(tmp_path / "tiny.yaml"))[0] == 0
    code, _, err = cli("scheduler", "sync", "--test-second", "*/5")
    assert code == 0, err
    before = _aliases(url)

    first = scheduler_process(url, kl_home, "--for", "180", "--poll", "0.5", log=tmp_path / "a.log", handler=None)
    try:
        killed = wait_for(lambda: _running(url), 90, "a running downskill")
        # well inside the job (loading, training or evaluating), but never past it: kill at the
        # latest when the final evaluation starts, whatever the machine's speed
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and _state(url, killed.id) == "running":
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert _aliases(url) == before
    with session_scope(url) as session:
        assert session.get(Job, killed.id).state in ("running", "evaluating")

    second = scheduler_process(url, kl_home, "--once", "--poll", "0.5", log=tmp_path / "b.log", handler=None)
    try:
        code = second.wait(timeout=600)  # a whole downskill; CI machines are slower than ours
    finally:
        if second.poll() is None:
            second.kill()
    log = (tmp_path / "b.log").read_text()
    assert code == 0, log

    with session_scope(url) as session:
        job = session.get(Job, killed.id)
        rows = {(r.trigger_id, leases.as_utc(r.fire_time)): r for r in session.scalars(select(SchedulerLease))}
        jobs = {j.id: j for j in session.scalars(select(Job))}
    assert job.state == "failed" and "the scheduler process running it stopped" in job.error
    assert job.registered_version is None  # the killed job registered nothing
    assert mlflow_client().get_run(job.mlflow_run_id).info.status == "FAILED"
    dead = next(r for r in rows.values() if r.job_id == killed.id)
    assert dead.status == "failed" and "crash or kill" in dead.message
    # no alias ever pointed at anything the killed job made; the next fire ran to the end
    ran = [r for (t, when), r in rows.items() if t == TRIGGER and r.status == "done"]
    assert len(ran) == 1 and leases.as_utc(ran[0].fire_time) > leases.as_utc(dead.fire_time)
    finished = jobs[ran[0].job_id]
    assert finished.state == "registered" and finished.registered_version == "2"
    assert ran[0].message.startswith("version=2 gate=")
    after = _aliases(url)
    assert after[("tiny", "candidate")] == "2"
    assert after[("tiny", "champion")] in (v1, "2")  # "2" only if the gate passed (auto_promote)
    assert "outcome=done" in log and "Traceback" not in log
