"""kill -9 at any moment of a job: no version without its report, no alias moved by the crash,
the job marked failed with its reason at the next start, and a re-run succeeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from kernel_lifecycle import aliases
from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import dispose_engines, session_scope
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.settings import get_settings
from tests.factories import make_tiny_base, write_tiny_skills

POLICY = """
schema_version: 1
kernel: tiny
owners: [ml-platform]
skills:
  retained:
    - {name: py, floor: 0.0, tolerance: 1.0}
    - {name: sq, floor: 0.0, tolerance: 1.0}
  retired:
    - {name: cob, ceiling: 0.95, sunset: 2099-01-01}
plans:
  downskill:
    skill: cob
    method: npo
    hyperparameters: {steps: 6, lr: 0.002, eval_every: 2, batch_size: 4}
    retain: [py, sq]
triggers:
  - {name: manual-downskill, kind: manual, plan: downskill}
gate:
  min_probes: 1
  harness: {max_new_tokens: 12, split: test}
approvals: {approvers: [alice], required: 1}
"""


def _cli(args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "kernel_lifecycle.cli", *args], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs,
    )


@pytest.fixture
def tiny_kernel(kl_home, monkeypatch, tmp_path, migrated_db):
    """The tiny kernel v1 (distilled), champion, with a policy applied; env for subprocesses."""
    from kernel_lifecycle.boundary.report import HarnessConfig
    from kernel_lifecycle.jobs import run_job
    from kernel_lifecycle.jobs.config import DistillConfig
    from kernel_lifecycle.policy.loader import load_policy
    from kernel_lifecycle.policy_apply import apply_policy

    monkeypatch.setenv("KL_SKILLS_DIR", str(write_tiny_skills(tmp_path / "skills")))
    get_settings.cache_clear()
    policy = tmp_path / "tiny.yaml"
    policy.write_text(POLICY)
    apply_policy(load_policy(policy), actor="alice")
    teacher = make_tiny_base(tmp_path / "teacher", hidden=32, layers=2)
    spec = DistillConfig(
        kernel="tiny", skills=["py", "cob"], teacher=str(teacher), steps=2, batch_size=4, eval_every=2,
        eval_problems=2, harness=HarnessConfig(max_new_tokens=12, split="test"),
    )
    v1 = run_job(spec, actor="test").version
    with session_scope() as session:
        aliases.move_alias(session, name="tiny", alias="champion", version=v1, actor="alice", reason="setup")
    dispose_engines()
    env = {**os.environ, "KL_HOME": str(kl_home), "KL_DATABASE_URL": get_settings().db_url, "KL_SKILLS_DIR": str(tmp_path / "skills")}
    return env


def _invariants() -> None:
    from kernel_lifecycle.boundary.tracking import load_version_report

    for kv in registry.list_versions("tiny"):
        assert load_version_report(kv).kernel == "tiny"  # no version without its report
    with session_scope() as session:
        assert repo.get_alias(session, kernel="tiny", alias="champion") == "1"
    assert registry.resolve("tiny@champion").version == "1"


def _downskill_states() -> list[str]:
    dispose_engines()
    with session_scope() as session:
        return [j.state for j in repo.list_jobs(session, kernel="tiny") if j.kind == "downskill"]


def _kill_at(phase: str, env: dict[str, str], before: int) -> str:
    """Start a downskill, kill -9 its process group at `phase`; return what was observed.

    Phases are read from the job's own row, not from the clock, so the kill lands in the same
    part of the job on a fast laptop and on a loaded CI machine: ``start-up`` (imports, before
    any row), ``running`` (training and the per-checkpoint evaluations), ``evaluating`` (the
    final report, the relearning probe and the registration that follows it).
    """
    proc = _cli(["jobs", "downskill", "tiny", "--actor", "alice"], env)
    deadline = time.monotonic() + 600
    seen = "start-up"
    while proc.poll() is None and time.monotonic() < deadline:
        if phase == "start-up":
            time.sleep(0.5)
            break
        states = _downskill_states()
        seen = states[0] if len(states) > before else "start-up"
        if seen == phase:
            time.sleep(0.3)  # into the phase, not on its first line
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        proc.wait()
        return "finished"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    return seen


def test_kill_minus_nine_at_any_moment(tiny_kernel) -> None:
    env = tiny_kernel
    outcomes = []
    for phase in ("start-up", "running", "evaluating", "running"):
        outcomes.append(_kill_at(phase, env, before=len(_downskill_states())))
        dispose_engines()
        _invariants()
    assert sum(o in ("running", "evaluating") for o in outcomes) >= 2, f"too few kills mid-job: {outcomes}"

    proc = _cli(["jobs", "downskill", "tiny", "--actor", "alice", "--json"], env)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    new = json.loads(out)["version"]
    dispose_engines()
    _invariants()
    with session_scope() as session:
        jobs = [j for j in repo.list_jobs(session, kernel="tiny") if j.kind == "downskill"]
        # a job that outran its kill registered a version of its own; every killed job that had
        # started is failed with the reason (marked by the next start); a kill during start-up
        # leaves no row at all
        assert [j.state for j in jobs].count("registered") == 1 + outcomes.count("finished"), outcomes
        failed = [j for j in jobs if j.state != "registered"]
        assert len(failed) >= 2
        assert all(j.state == "failed" and "stopped (crash or kill)" in (j.error or "") for j in failed)
        assert jobs[0].state == "registered" and jobs[0].registered_version == new
        assert repo.get_alias(session, kernel="tiny", alias="candidate") == new
    assert registry.resolve("tiny@candidate").version == new
