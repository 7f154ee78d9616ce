"""Job specs as JSON payloads, the form a job crosses to an executor in (``executor.submit``).

An adapter over today's dataclass specs until one typed config per job kind replaces them:
``upskill_payload(spec)`` on the submitting side, ``run_upskill(payload, ...)`` on the worker,
which rebuilds the spec and runs ``jobs.upskill.run`` there.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kernel_lifecycle.boundary.report import HarnessConfig
from kernel_lifecycle.jobs.common import Thresholds
from kernel_lifecycle.jobs.upskill import UpskillSpec, run, validate


def upskill_payload(spec: UpskillSpec) -> dict[str, Any]:
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    return {**fields, "thresholds": dataclasses.asdict(spec.thresholds), "harness": spec.harness.model_dump(mode="json")}


def upskill_spec(payload: dict[str, Any]) -> UpskillSpec:
    fields = dict(payload)
    if "thresholds" in fields:
        fields["thresholds"] = Thresholds(**fields["thresholds"])
    if "harness" in fields:
        fields["harness"] = HarnessConfig.model_validate(fields["harness"])
    return UpskillSpec(**fields)


def run_upskill(payload: dict[str, Any], *, actor: str, trigger_id: str | None = None) -> dict[str, Any]:
    """The worker's side: the spec from its payload, the job, the registered version as a dict."""
    spec = upskill_spec(payload)
    validate(spec)
    return run(spec, actor=actor, trigger_id=trigger_id, progress=False).as_dict()
