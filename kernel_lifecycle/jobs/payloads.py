"""The job function an executor runs: a job config in its JSON form in, the registered
version as a dict out (``executor.submit(RUN_JOB, config.model_dump(mode="json"), ...)``).
Only JSON crosses to a Ray worker; the worker rebuilds the typed config and runs its recipe."""

from __future__ import annotations

from typing import Any

RUN_JOB = "kernel_lifecycle.jobs.payloads:run_job_payload"


def run_job_payload(payload: dict[str, Any], *, actor: str, trigger_id: str | None = None) -> dict[str, Any]:
    from kernel_lifecycle.jobs import run_job

    return run_job(payload, actor=actor, trigger_id=trigger_id, progress=False).as_dict()
