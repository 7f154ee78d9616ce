"""Boundary reports into MLflow: the JSON, a plot and per-skill metrics of a report; step metrics.

Everything goes through the MLflow client to an explicit run id (jobs pass theirs); without one
the active run (``mlflow.start_run``) is used, so a notebook can log a report too.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from kernel_lifecycle.boundary.plot import plot_inventory
from kernel_lifecycle.boundary.report import BoundaryReport, SkillMetrics
from kernel_lifecycle.errors import KernelLifecycleError, RefusedError
from kernel_lifecycle.registry.client import KernelVersion, set_version_description
from kernel_lifecycle.registry.tracking import client

REPORT_PATH = "boundary"
REPORT_ARTIFACT = f"{REPORT_PATH}/report.json"  # where a job's run keeps the report it registered with
REPORT_TAG = "kernel.boundary_report"  # the version tag pointing at it: runs:/<run>/boundary/report.json


def _run_id(run_id: str | None) -> str:
    if run_id is not None:
        return run_id
    import mlflow

    active = mlflow.active_run()
    if active is None:
        raise KernelLifecycleError("no MLflow run to log the boundary report to: pass run_id or start a run")
    return active.info.run_id


def log_report(
    report: BoundaryReport,
    *,
    run_id: str | None = None,
    step: int | None = None,
    prefix: str = "",
    plot: bool = True,
) -> str:
    """Log ``boundary/report.json``, ``boundary/inventory.png`` and the report's numbers.

    Metrics: ``<prefix>boundary.<skill>.value|ci_low|ci_high|entropy|truncation|no_code`` (the
    gate split), ``.fresh|fresh_ci_high`` and ``.gap|gap_low|gap_high``, ``<prefix>check.<name>``
    (1 passed, 0 failed) and a check's curve (``check.relearning.curve`` by relearning step), at
    ``step`` when given. Returns the run id.
    """
    from mlflow.entities import Metric

    run_id = _run_id(run_id)
    mlflow_client = client()
    folder = f"{prefix.rstrip('.')}/{REPORT_PATH}" if prefix else REPORT_PATH
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        path.write_text(report.to_json(), encoding="utf-8")
        mlflow_client.log_artifact(run_id, str(path), folder)
        if plot and report.skills:
            label = report.version or "candidate"
            png = plot_inventory(
                {label: report.skills}, path=Path(tmp) / "inventory.png",
                title=f"{report.kernel}: skills ({report.harness.split}, harness {report.harness_hash})",
            )
            mlflow_client.log_artifact(run_id, str(png), folder)
    now = int(time.time() * 1000)
    batch = [
        Metric(f"{prefix}boundary.{name}.{key}", float(value), now, step or 0)
        for name, metrics in report.skills.items()
        for key, value in _numbers(metrics).items()
    ]
    batch += [  # the version page shows gate split, fresh and the gap side by side
        Metric(f"{prefix}boundary.{name}.{key}", float(value), now, step or 0)
        for name, metrics in report.fresh.items()
        for key, value in (("fresh", metrics.value), ("fresh_ci_high", metrics.ci_high))
    ]
    batch += [
        Metric(f"{prefix}boundary.{name}.{key}", float(value), now, step or 0)
        for name, gap in report.gaps.items()
        for key, value in (("gap", gap.gap), ("gap_low", gap.low), ("gap_high", gap.high))
    ]
    batch += [Metric(f"{prefix}check.{c.name}", 1.0 if c.passed else 0.0, now, step or 0) for c in report.checks]
    batch += [
        Metric(f"{prefix}check.{c.name}.curve", float(v), now, i)
        for c in report.checks
        for i, v in enumerate(c.curve, start=1)
    ]
    # MLflow's log_batch takes at most 1000 metrics per call
    for i in range(0, len(batch), 1000):
        mlflow_client.log_batch(run_id, metrics=batch[i : i + 1000])
    mlflow_client.set_tag(run_id, f"{prefix}boundary.harness_hash", report.harness_hash)
    if not prefix:
        log_split_inputs(run_id, report.split_digests)
        log_probe_table(run_id, report)
    return run_id


PROBES_TABLE = f"{REPORT_PATH}/probes.json"  # the per-probe table of a run's report (mlflow.log_table)
PROBE_COLUMNS = ("skill", "split", "task_id", "family", "passed", "reason", "completion")


def probe_rows(report: BoundaryReport) -> list[dict[str, object]]:
    """One row per probe the report measured (gate split, then fresh): the first sample's verdict."""
    measured = [*report.skills.values(), *(m for n, m in report.fresh.items() if m is not report.skills.get(n))]
    return [
        {"skill": m.skill, "split": m.split, "task_id": p.task_id, "family": p.family, "passed": p.c > 0,
         "reason": p.result, "completion": p.completion}
        for m in measured for p in m.problems
    ]


def log_probe_table(run_id: str, report: BoundaryReport) -> None:
    """The per-probe table on the run (``boundary/probes.json``; the MLflow UI's artifact view and
    evaluation tab read it, ``mlflow.load_table`` too)."""
    import mlflow

    rows = probe_rows(report)
    if rows:
        mlflow.log_table({c: [r[c] for r in rows] for c in PROBE_COLUMNS}, PROBES_TABLE, run_id=run_id)


def load_probe_table(run_id: str) -> list[dict[str, object]]:
    """The rows of a run's per-probe table; [] when it has none (a report logged before it existed)."""
    import json

    import mlflow.artifacts

    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{PROBES_TABLE}")
    except Exception:  # noqa: BLE001 - MLflow raises its own errors for a missing artifact
        return []
    table = json.loads(text)
    return [dict(zip(table["columns"], row)) for row in table["data"]]


def log_split_inputs(run_id: str, digests: Mapping[str, str]) -> None:
    """Each ``<skill>/<split>`` digest as an MLflow dataset input of the run (context: the
    split), unless the run already has that dataset (a job logs its train split itself)."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    mlflow_client = client()
    have = {(d.dataset.name, d.dataset.digest) for d in mlflow_client.get_run(run_id).inputs.dataset_inputs}
    inputs = []
    for key, digest in sorted(digests.items()):
        # MetaDataset records identity (name, digest, what it is) without copying data
        dataset = MetaDataset(source=CodeDatasetSource(tags={"skill_split": key, "sha256": digest}), name=key, digest=digest[:36])
        if (key, dataset.digest) not in have:
            inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", key.rpartition("/")[2])]))
    if inputs:
        mlflow_client.log_inputs(run_id, datasets=inputs)


def _numbers(metrics: SkillMetrics) -> dict[str, float]:
    return {
        "value": metrics.value,
        "ci_low": metrics.ci_low,
        "ci_high": metrics.ci_high,
        "entropy": metrics.mean_entropy,
        "truncation": metrics.truncation_rate,
        "no_code": metrics.no_code_rate,
    }


def log_step_metrics(
    run_id: str | None, metrics: Mapping[str, SkillMetrics], step: int, *, roles: Mapping[str, str] | None = None
) -> None:
    """One point of each curve at ``step``: ``curve.<role>.<skill>`` (+ ``.ci_high``, ``.entropy``).

    ``roles`` names the skill being forgotten/learned (``forget``, ``learn``); the others are
    ``retain``. MLflow's own charts then draw the forget curve falling beside the retain curves.
    """
    from mlflow.entities import Metric

    roles = roles or {}
    now = int(time.time() * 1000)
    batch = []
    for name, m in metrics.items():
        role = roles.get(name, "retain")
        for suffix, value in (
            ("", m.value), (".ci_high", m.ci_high), (".entropy", m.mean_entropy), (".truncation", m.truncation_rate)
        ):
            batch.append(Metric(f"curve.{role}.{name}{suffix}", float(value), now, step))
    client().log_batch(_run_id(run_id), metrics=batch)


LOCALIZE_PATH = "localize"
_SECTION_START, _SECTION_END = "<!-- kl:localize -->", "<!-- /kl:localize -->"


def log_localization(kv: KernelVersion, files: list[Path], *, method: str, skills: list[str]) -> str:
    """Log a localization's heatmaps and JSON on the version's run (``localize/<method>/``) and
    show the heatmaps on the version's page (a section of its description, replaced on re-run).

    Returns the artifact folder. The version's run is the job run that registered it.
    """
    if not kv.run_id:
        raise KernelLifecycleError(f"{kv.ref} has no MLflow run to log its localization to; re-register it with a run")
    folder = f"{LOCALIZE_PATH}/{method}"
    mlflow_client = client()
    for path in files:
        mlflow_client.log_artifact(kv.run_id, str(path), folder)
    images = "\n".join(
        f"![{name} heads]({artifact_link(kv.run_id, f'{folder}/{name}.png')})" for name in skills
    )
    section = (
        f"{_SECTION_START}\n\n**Where the skills live** ({method}: change in solution log-likelihood when a head is "
        f"ablated; `kernel-lifecycle boundary localize`; JSON in `{folder}/`)\n\n{images}\n\n{_SECTION_END}"
    )
    set_version_description(kv.name, kv.version, replace_section(kv.description, section))
    return folder


def replace_section(description: str, section: str) -> str:
    """``description`` with its localization section replaced by ``section`` (appended if absent)."""
    head, start, rest = description.partition(_SECTION_START)
    tail = rest.partition(_SECTION_END)[2] if start else ""
    return f"{head.rstrip()}\n\n{section}{tail}".lstrip()


GATE_DECISION = "gate/decision.json"  # the latest gate decision of a version, on its run


def log_gate_decision(run_id: str, decision: Mapping[str, object]) -> str:
    """Write a gate decision's JSON (every rule with its numbers) on the version's run; returns the
    link the version page's gate table points at."""
    import json

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(GATE_DECISION).name
        path.write_text(json.dumps(decision, indent=2, default=str), encoding="utf-8")
        client().log_artifact(run_id, str(path), str(Path(GATE_DECISION).parent))
    return artifact_link(run_id, GATE_DECISION)


def artifact_link(run_id: str, path: str) -> str:
    """A link to a run's artifact, as the MLflow UI's pages (markdown descriptions) resolve it."""
    return f"get-artifact?path={quote(path, safe='')}&run_uuid={run_id}"


def report_uri(run_id: str) -> str:
    """The ``REPORT_TAG`` value of a version registered by run ``run_id``."""
    return f"runs:/{run_id}/{REPORT_ARTIFACT}"


def load_version_report(kv: KernelVersion) -> BoundaryReport:
    """The boundary report a version was registered with (its ``REPORT_TAG``); refused when it
    has none (a version registered by hand cannot be gated)."""
    import mlflow.artifacts

    uri = kv.tags.get(REPORT_TAG)
    if not uri:
        raise RefusedError(f"{kv.ref} has no boundary report; it cannot be gated")
    return BoundaryReport.from_json(mlflow.artifacts.load_text(uri))
