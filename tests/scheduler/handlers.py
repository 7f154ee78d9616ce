"""Plan handlers for scheduler tests, injected with ``scheduler run --handler``.

They do what the scheduler needs to observe of a real plan, through the real lifecycle DB:
one ``kl_jobs`` row per call with the fire's ``trigger_id``, the job's state machine, and an
alias move (``candidate`` -> the job's id) committed in the same transaction as the job's final
state, as the real jobs do. ``KL_TEST_FIRE_SECONDS`` makes a job take that long while running,
so a test can kill the scheduler mid-job. No MLflow: these tests are about the scheduler.
"""

from __future__ import annotations

import os
import time

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.errors import JobError


def db_job(kernel: str, plan: str, *, trigger_id: str, actor: str = "scheduler") -> dict:
    seconds = float(os.environ.get("KL_TEST_FIRE_SECONDS", "0.3"))
    with session_scope() as session:
        job = repo.create_job(session, kind=plan, kernel=kernel, params={"actor": actor}, trigger_id=trigger_id)
        repo.transition(session, job=job, to_state="running", message="test handler")
        job_id = job.id
    time.sleep(seconds)
    for _attempt in range(5):  # fires of a loaded machine may overlap: the latest job wins
        with session_scope() as session:
            job = repo.get_job(session, job_id=job_id)
            previous = repo.get_alias(session, kernel=kernel, alias="candidate")
            if repo.compare_and_set_alias(session, kernel=kernel, alias="candidate", expected=previous, new=job_id):
                repo.transition(session, job=job, to_state="succeeded", message="done")
                break
    else:
        raise JobError("lost the candidate alias race five times")
    return {"kernel": kernel, "plan": plan, "version": job_id[:8], "job_id": job_id}


def failing_job(kernel: str, plan: str, *, trigger_id: str, actor: str = "scheduler") -> dict:
    with session_scope() as session:
        job = repo.create_job(session, kind=plan, kernel=kernel, trigger_id=trigger_id)
        repo.transition(session, job=job, to_state="running")
        repo.transition(session, job=job, to_state="failed", message="boom (test)")
    raise JobError("boom (test)")
