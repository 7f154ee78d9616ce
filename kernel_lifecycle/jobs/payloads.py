"""Jobs through the executor (``KL_EXECUTOR``): ``submit_job`` is ``run_job`` for callers (the
CLI, the scheduler's pipeline), local in this process or as a Ray task declaring the plan's
resources. Only a config's JSON form crosses to a Ray worker (``run_job_payload`` there)."""

from __future__ import annotations

from typing import Any

from kernel_lifecycle import executor
from kernel_lifecycle.display import SILENT, Display
from kernel_lifecycle.executor import Handle
from kernel_lifecycle.jobs.recipes import AnyConfig, run_job
from kernel_lifecycle.policy.schema import Policy
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.registry.client import KernelVersion
from kernel_lifecycle.settings import get_settings

RUN_JOB = "kernel_lifecycle.jobs.payloads:run_job_payload"


def run_job_payload(payload: dict[str, Any], *, actor: str, trigger_id: str | None = None) -> dict[str, Any]:
    """On the worker: the typed config from its JSON form, its recipe, the version as a dict."""
    return run_job(payload, actor=actor, trigger_id=trigger_id).as_dict()


def plan_resources(policy: Policy | None, kind: str) -> dict[str, float] | None:
    """The resources a policy's plan of ``kind`` declares (None: no policy or no such plan)."""
    plan = getattr(policy.plans, kind, None) if policy is not None else None
    return plan.resources.model_dump() if plan is not None else None


def submit_job(
    config: AnyConfig, *, actor: str, trigger_id: str | None = None, display: Display = SILENT,
    resources: dict[str, float] | None = None, detach: bool = False,
) -> KernelVersion | Handle:
    """``run_job`` on the configured executor: locally as before (its progress on ``display``);
    under Ray a task declaring ``resources`` whose job's state changes stream to ``display``.
    Returns the registered version, or with ``detach`` the handle of the Ray job submitted."""
    if get_settings().executor == "local" and not detach:
        return run_job(config, actor=actor, trigger_id=trigger_id, display=display)
    handle = executor.submit(RUN_JOB, config.model_dump(mode="json"), actor=actor, trigger_id=trigger_id,
                             resources=resources, detach=detach)
    if handle.detached:
        return handle
    done = handle.result(on_event=None if display is SILENT else display.line)
    return registry.get_version(done["name"], done["version"])
