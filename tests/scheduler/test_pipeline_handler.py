"""The default handler is the lead's real ``pipeline.run_plan``, imported at fire time only."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.db.models import SchedulerLease
from kernel_lifecycle.scheduler.sync import open_scheduler, sync


def test_importing_the_scheduler_does_not_import_the_pipeline() -> None:
    code = (
        "import sys, kernel_lifecycle.scheduler.service, kernel_lifecycle.scheduler.sync, kernel_lifecycle.cli.scheduler;"
        "bad = [m for m in ('kernel_lifecycle.pipeline', 'torch', 'mlflow') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the backend is not what this tests
def test_a_fire_calls_the_real_run_plan(migrated_db: str, apply_policy) -> None:  # noqa: ANN001
    """No kernel is registered (nor, yet, demo skills): the real pipeline refuses, and the fire
    records exactly why."""
    from kernel_lifecycle.scheduler.service import run_service

    # a yearly cron forced due now: "* * * * *" fired again when the (slow, first-import) pipeline
    # crossed a minute boundary on CI, adding a `missed` outcome
    apply_policy("nokernel", '- {name: n, kind: cron, cron: "0 0 1 1 *", plan: downskill}')
    sync()
    with open_scheduler() as scheduler:
        job = scheduler.get_job("nokernel:n:downskill")
        job._modify(next_run_time=datetime.now(timezone.utc))
        scheduler._lookup_jobstore("default").replace_job(job)
    summary = run_service(once=True, duration=60, poll=0.2, install_signals=False)
    assert summary.stopped_by == "--once"
    (outcome,) = summary.outcomes
    assert outcome["outcome"] == "failed"
    assert outcome["message"].split(":")[0].endswith("Error")  # the pipeline's typed error, verbatim
    with session_scope() as session:
        (lease,) = session.scalars(select(SchedulerLease))
    assert lease.status == "failed" and lease.message == outcome["message"]
    assert lease.trigger_id == "nokernel:n:downskill"
