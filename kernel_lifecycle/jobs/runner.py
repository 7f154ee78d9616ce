"""What every job shares: a lifecycle DB row with its state machine, an MLflow run, and the
one registration step that ends every recipe.

Crash safety, by construction:
- ``register_candidate`` logs the boundary report before it creates the version, so no version
  exists without its report;
- jobs never move ``champion``; the ``candidate`` alias moves in the same DB transaction that
  marks the job registered (compare-and-set + audit row first, then MLflow's mirror);
- a job whose process died (kill -9) is marked failed, with the reason, by the next job or
  scheduler start on this host, or by `jobs list`/`jobs show` (``repo.fail_orphaned_jobs``);
- an alias MLflow shows elsewhere than the audit table says is the guard's business
  (``kernel-lifecycle guard check --repair``), not every job start's.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel_lifecycle import aliases
from kernel_lifecycle.boundary.report import BoundaryReport
from kernel_lifecycle.boundary.tracking import REPORT_TAG, log_report, report_uri
from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import ensure_current, session_scope
from kernel_lifecycle.executor import placement
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.registry.bundle import verify_bundle
from kernel_lifecycle.registry.tracking import client as mlflow_client
from kernel_lifecycle.registry.tracking import experiment_id


@dataclass
class JobContext:
    job_id: str
    kind: str
    kernel: str
    run_id: str
    actor: str
    workdir: Path

    def state(self, to_state: str, message: str | None = None) -> None:
        with session_scope() as session:
            job = repo.get_job(session, job_id=self.job_id)
            repo.transition(session, job=job, to_state=to_state, message=message)

    def log_params(self, params: dict[str, Any]) -> None:
        """Each value as text (JSON unless a string, cut at MLflow's 6,000 characters), in
        batches of MLflow's 100 params per call rather than one call each."""
        from mlflow.entities import Param

        items = [Param(key, (value if isinstance(value, str) else json.dumps(value, default=str))[:6000])
                 for key, value in params.items()]
        client = mlflow_client()
        for start in range(0, len(items), 100):
            client.log_batch(self.run_id, params=items[start:start + 100])

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        mlflow_client().log_metric(self.run_id, key, float(value), step=step or 0)

    @contextmanager
    def step_metric(self, key: str, *, flush_every: int = 100) -> Iterator[Callable[..., None]]:
        """An ``on_step`` for the training loop that logs ``key`` at every step, sent to MLflow
        in batches (one call per ``flush_every`` steps and one at the end, also when training
        fails) instead of one call per step: on a remote tracking server each call is a round
        trip. The values, steps and timestamps are the same; the UI shows them up to
        ``flush_every`` steps late."""
        from mlflow.entities import Metric

        client, buffer = mlflow_client(), []

        def flush() -> None:
            if buffer:
                client.log_batch(self.run_id, metrics=list(buffer))
                buffer.clear()

        def record(step: int, value: float, *_: Any) -> None:
            buffer.append(Metric(key, float(value), int(time.time() * 1000), int(step)))
            if len(buffer) >= flush_every:
                flush()

        try:
            yield record
        except BaseException:
            with suppress(Exception):  # keep what was trained so far, but not over the real error
                flush()
            raise
        flush()

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        mlflow_client().log_artifact(self.run_id, str(path), artifact_path)

    def log_artifact_dir(self, path: Path, artifact_path: str) -> None:
        mlflow_client().log_artifacts(self.run_id, str(path), artifact_path)

    def log_dataset(self, name: str, digest: str, source: str) -> None:
        """Record a dataset's digest as an MLflow input of the run."""
        from mlflow.data.code_dataset_source import CodeDatasetSource
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        # MetaDataset records identity (name, digest, where it came from) without copying data.
        dataset = MetaDataset(source=CodeDatasetSource(tags={"uri": source, "sha256": digest}), name=name, digest=digest[:36])
        mlflow_client().log_inputs(
            self.run_id,
            datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "training")])],
        )

    def log_report(self, report: BoundaryReport) -> None:
        log_report(report, run_id=self.run_id)

    def register_candidate(
        self, bundle_dir: Path, report: BoundaryReport, *, description: str, parent: registry.KernelVersion | None = None,
        extra_tags: dict[str, str] | None = None,
    ) -> registry.KernelVersion:
        """The end of every recipe: log the report, verify the bundle (once), create the MLflow
        version, then mark the job registered and move ``candidate`` (compare-and-set + audit
        row) in one lifecycle-DB transaction. ``parent``: the parent version as the job fetched it."""
        self.log_report(report)
        manifest = verify_bundle(bundle_dir)
        if manifest.parent_version and (parent is None or parent.version != manifest.parent_version):
            parent = registry.get_version(manifest.kernel, manifest.parent_version)
        chain = registry.lineage(manifest.kernel, parent) if parent is not None else []
        lineage = "Lineage: this version" + "".join(
            f" <- v{v.version} ({v.tags.get('kernel.job_kind', 'registered')})" for v in chain
        )
        plot = f"![boundary curves](get-artifact?path=boundary%2Fcurves.png&run_uuid={self.run_id})"
        kv = registry.create_version(
            bundle_dir,
            manifest,
            run_id=self.run_id,
            description=f"{description}\n\n{lineage}; job {self.job_id}, policy {str(manifest.policy_sha256)[:12]}\n\n{plot}",
            extra_tags={REPORT_TAG: report_uri(self.run_id), "kernel.job_kind": self.kind, **(extra_tags or {})},
        )
        with session_scope() as session:
            job = repo.get_job(session, job_id=self.job_id)
            job.registered_version = kv.version
            repo.transition(session, job=job, to_state="registered", message=f"registered version {kv.version}")
            aliases.move_alias(
                session, name=kv.name, alias="candidate", version=kv.version, actor=self.actor,
                reason=f"{self.kind} job {self.job_id}", check_version=False,
            )
        return kv


def recover() -> list[str]:
    """At start: fail the jobs whose process died."""
    ensure_current()
    with session_scope() as session:
        return [job.id for job in repo.fail_orphaned_jobs(session)]


@contextmanager
def job_run(
    kind: str,
    kernel: str,
    params: dict[str, Any],
    *,
    actor: str,
    trigger_id: str | None = None,
    executor: str | None = None,
    executor_ref: str | None = None,
) -> Iterator[JobContext]:
    """A job's life: queued -> running -> ... ; any exception marks it failed with the reason.

    ``executor``/``executor_ref``: where it runs (default: the executor that started this
    process's work, ``executor.placement()``: "local", or "ray" and the Ray task or job id).
    A Ray task's job is owned by its driver, whose death ends it; the worker is named in the
    "running" event."""
    where = placement()
    if executor is None:
        executor, executor_ref = where.executor, where.ref
    recover()
    with session_scope() as session:
        job = repo.create_job(session, kind=kind, kernel=kernel, params=params, trigger_id=trigger_id,
                              owner=where.owner, executor=executor, executor_ref=executor_ref)
        job_id = job.id
    client = mlflow_client()
    run = client.create_run(
        experiment_id(),
        run_name=f"{kind}-{kernel}-{job_id[:8]}",
        tags={"kernel": kernel, "kernel.job_id": job_id, "kernel.job_kind": kind, "kernel.actor": actor},
    )
    with session_scope() as session:
        job = repo.get_job(session, job_id=job_id)
        job.mlflow_run_id = run.info.run_id
        worker = f"; worker {repo.process_owner()}" if where.owner else ""
        repo.transition(session, job=job, to_state="running", message=f"MLflow run {run.info.run_id}{worker}")
    with tempfile.TemporaryDirectory(prefix=f"kl-{kind}-") as tmp:
        ctx = JobContext(job_id=job_id, kind=kind, kernel=kernel, run_id=run.info.run_id, actor=actor, workdir=Path(tmp))
        try:
            yield ctx
        except BaseException as exc:
            reason = f"{type(exc).__name__}: {exc}".strip()
            with session_scope() as session:
                job = repo.get_job(session, job_id=job_id)
                if job.state not in ("registered", "failed"):
                    repo.transition(session, job=job, to_state="failed", message=reason[:2000])
            client.set_terminated(run.info.run_id, status="FAILED")
            raise
        client.set_terminated(run.info.run_id, status="FINISHED")
