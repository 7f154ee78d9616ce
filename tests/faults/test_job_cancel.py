"""Fault (4): SIGTERM (a deploy) or Ctrl-C (SIGINT to the terminal's process group) to a running
job: it stops at its next step, its state is ``cancelled`` at once, its MLflow run is KILLED,
nothing is registered, no process of its group is left, and `jobs list` says so."""

from __future__ import annotations

import json
import os
import signal

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import dispose_engines, session_scope
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.registry.tracking import client as mlflow_client
from tests.faults.pausing import one_error_after
from tests.jobs.test_crash_safety import _cli, tiny_kernel  # noqa: F401 - the fixture: kernel `tiny` v1, champion
from tests.scheduler.procs import wait_for


def _downskill_rows() -> list:
    dispose_engines()
    with session_scope() as session:
        return [(j.id, j.state, j.error, j.mlflow_run_id) for j in repo.list_jobs(session, kernel="tiny") if j.kind == "downskill"]


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_stopped_job_is_cancelled_and_registers_nothing(tiny_kernel) -> None:  # noqa: F811
    # a deploy's SIGTERM to the job's process; Ctrl-C: SIGINT to the terminal's whole group
    for sig, to_group in ((signal.SIGTERM, False), (signal.SIGINT, True)):
        _stop_a_job(tiny_kernel, sig, to_group)


def _stop_a_job(env: dict[str, str], sig: signal.Signals, to_group: bool) -> None:
    versions = [v.version for v in registry.list_versions("tiny")]
    with session_scope() as session:
        candidate = repo.get_alias(session, kernel="tiny", alias="candidate")
    # many steps and one checkpoint at the end: the signal lands in training, never after it
    proc = _cli(["jobs", "downskill", "tiny", "--actor", "alice", "--steps", "5000", "--eval-every", "5000"], env)
    line, _ = one_error_after(proc, lambda: [r for r in _downskill_rows() if r[1] == "running"],
                              lambda: (os.killpg if to_group else os.kill)(proc.pid, sig), "the job to run", wait=300, finish=120)
    assert line.startswith("error: job ") and f"cancelled ({sig.name})" in line and "nothing was registered" in line
    assert wait_for(lambda: _group_gone(proc.pid), 30, "the job's processes to end")  # no child left behind

    (job_id, state, error, run_id) = _downskill_rows()[0]  # the newest
    assert state == "cancelled" and error.startswith(f"cancelled ({sig.name})"), error
    assert mlflow_client().get_run(run_id).info.status == "KILLED"
    assert [v.version for v in registry.list_versions("tiny")] == versions  # nothing registered
    with session_scope() as session:
        assert repo.get_alias(session, kernel="tiny", alias="candidate") == candidate
        assert repo.get_alias(session, kernel="tiny", alias="champion") == "1"

    listing = _cli(["jobs", "list", "--kernel", "tiny", "--json"], env)  # started once: _cli is a Popen
    listed_out, listed_err = listing.communicate(timeout=120)
    assert listing.returncode == 0, listed_err
    shown = {row["id"]: row for row in json.loads(listed_out)}
    assert shown[job_id]["state"] == "cancelled" and shown[job_id]["error"] == error
