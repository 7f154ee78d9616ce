"""Jobs through the executor (``KL_EXECUTOR``): ``submit_job`` is ``run_job`` for callers (the
CLI, the scheduler's pipeline), local in this process or as a Ray task declaring the plan's
resources. Only a config's JSON form crosses to a Ray worker (``run_job_payload`` there)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernel_lifecycle.executor import Handle
    from kernel_lifecycle.registry.client import KernelVersion

RUN_JOB = "kernel_lifecycle.jobs.payloads:run_job_payload"


def run_job_payload(payload: dict[str, Any], *, actor: str, trigger_id: str | None = None) -> dict[str, Any]:
    """On the worker: the typed config from its JSON form, its recipe, the version as a dict."""
    from kernel_lifecycle.jobs import run_job

    return run_job(payload, actor=actor, trigger_id=trigger_id, progress=False).as_dict()


def plan_resources(policy, kind: str) -> dict[str, float] | None:  # noqa: ANN001
    """The resources a policy's plan of ``kind`` declares (None: no policy or no such plan)."""
    plan = getattr(policy.plans, kind, None) if policy is not None else None
    return plan.resources.model_dump() if plan is not None else None


def submit_job(
    config, *, actor: str, trigger_id: str | None = None, progress: bool = False,  # noqa: ANN001
    resources: dict[str, float] | None = None, detach: bool = False,
) -> KernelVersion | Handle:
    """``run_job`` on the configured executor: locally as before (its progress bars here); under
    Ray a task declaring ``resources`` whose job's state changes stream here with ``progress``.
    Returns the registered version, or with ``detach`` the handle of the Ray job submitted."""
    from kernel_lifecycle import executor
    from kernel_lifecycle.jobs import run_job
    from kernel_lifecycle.registry import client as registry
    from kernel_lifecycle.settings import get_settings

    if get_settings().executor == "local" and not detach:
        return run_job(config, actor=actor, trigger_id=trigger_id, progress=progress)
    handle = executor.submit(RUN_JOB, config.model_dump(mode="json"), actor=actor, trigger_id=trigger_id,
                             resources=resources, detach=detach)
    if handle.detached:
        return handle
    on_event = None
    if progress:
        from kernel_lifecycle.cli.output import err_console

        on_event = lambda line: err_console.print(line, highlight=False)  # noqa: E731
    done = handle.result(on_event=on_event)
    return registry.get_version(done["name"], done["version"])
