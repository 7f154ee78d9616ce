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
  (``kernel-lifecycle guard check --repair``), not every job start's;
- SIGTERM or Ctrl-C (SIGINT) to a job running in a process's main thread asks it to stop: the
  job stops at its next step (a training step, a state change, the start of its registration),
  its state becomes ``cancelled`` and its MLflow run KILLED, and nothing is registered. A second
  signal stops it at once (KeyboardInterrupt), still ``cancelled``. Once the version exists the
  registration runs to its end: the job is then ``registered``.
"""

from __future__ import annotations

import errno
import json
import signal
import tempfile
import threading
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
from kernel_lifecycle.errors import JobError
from kernel_lifecycle.executor import placement
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.registry.bundle import verify_bundle
from kernel_lifecycle.registry.tracking import client as mlflow_client
from kernel_lifecycle.registry.tracking import experiment_id


class JobCancelled(JobError):
    """The job was asked to stop (SIGTERM, Ctrl-C) and stopped; nothing was registered."""


@dataclass
class Cancel:
    """A stop request: the signal that asked, and where the job was when it stopped."""

    requested: threading.Event
    by: str = ""
    step: int | None = None

    def ask(self, by: str) -> None:
        self.by = self.by or by
        self.requested.set()


@contextmanager
def stop_on_signals(cancel: Cancel) -> Iterator[None]:
    """SIGTERM/SIGINT set ``cancel`` (the job stops at its next step); a second one raises
    KeyboardInterrupt at once. Only in the main thread (signals are delivered there); a job run
    by a scheduler thread is stopped by the scheduler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(signum: int, _frame: object) -> None:
        if cancel.requested.is_set():
            raise KeyboardInterrupt(signal.Signals(signum).name)
        cancel.ask(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class JobContext:
    job_id: str
    kind: str
    kernel: str
    run_id: str
    actor: str
    workdir: Path
    cancel: Cancel | None = None

    def check_cancelled(self, step: int | None = None) -> None:
        """Stop here if a stop was asked for (SIGTERM, Ctrl-C): the job's next step."""
        if self.cancel is not None and self.cancel.requested.is_set():
            self.cancel.step = step if step is not None else self.cancel.step
            raise JobCancelled(f"job {self.job_id} cancelled ({self.cancel.by}){_at_step(self.cancel.step)}; nothing was registered")

    def state(self, to_state: str, message: str | None = None) -> None:
        self.check_cancelled()
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
            self.check_cancelled(step)
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
        row) in one lifecycle-DB transaction. ``parent``: the parent version as the job fetched it.
        A stop asked for before the version is created cancels the job; after, it registers."""
        self.check_cancelled()
        self.log_report(report)
        manifest = verify_bundle(bundle_dir)
        if manifest.parent_version and (parent is None or parent.version != manifest.parent_version):
            parent = registry.get_version(manifest.kernel, manifest.parent_version)
        chain = registry.lineage(manifest.kernel, parent) if parent is not None else []
        lineage = "Lineage: this version" + "".join(
            f" <- v{v.version} ({v.tags.get('kernel.job_kind', 'registered')})" for v in chain
        )
        plot = f"![boundary curves](get-artifact?path=boundary%2Fcurves.png&run_uuid={self.run_id})"
        self.check_cancelled()
        kv = registry.create_version(
            bundle_dir,
            manifest,
            run_id=self.run_id,
            description=f"{description}\n\n{lineage}; job {self.job_id}, policy {str(manifest.policy_sha256)[:12]}\n\n{plot}",
            extra_tags={REPORT_TAG: report_uri(self.run_id), "kernel.job_kind": self.kind, **(extra_tags or {})},
        )
        registry.pause_at("registration.created")
        try:
            with session_scope() as session:
                job = repo.get_job(session, job_id=self.job_id)
                job.registered_version = kv.version
                repo.transition(session, job=job, to_state="registered", message=f"registered version {kv.version}")
                aliases.move_alias(
                    session, name=kv.name, alias="candidate", version=kv.version, actor=self.actor,
                    reason=f"{self.kind} job {self.job_id}", check_version=False,
                )
        except Exception as exc:
            raise JobError(
                f"version {kv.version} of {kv.name} was created but not registered ({registry.first_line(exc)}); "
                "`kernel-lifecycle jobs unregistered --delete` removes it once the stores answer; then retry the job"
            ) from None
        return kv


REGISTERING = ("adapt", "distill", "upskill", "downskill")


def unregistered_versions(*, delete: bool = False) -> list[dict[str, str]]:
    """MLflow versions made by jobs that did not end registered (the store or the database
    failed between the version's creation and the job's registration): each named with its job;
    ``delete`` removes them from MLflow (the job's row and run stay, the record of what happened)."""
    with session_scope() as session:
        jobs = {j.id: (j.kernel, j.state) for j in repo.list_jobs(session, limit=100_000)
                if j.kind in REGISTERING and j.state in ("failed", "cancelled")}
    found = []
    for kernel in sorted({k for k, _ in jobs.values()}):
        if not registry.kernel_exists(kernel):
            continue
        for kv in registry.list_versions(kernel):
            job_id = kv.tags.get("kernel.job_id", "")
            if job_id in jobs:
                found.append({"kernel": kv.name, "version": kv.version, "job_id": job_id, "job_state": jobs[job_id][1]})
    if delete:
        for row in found:
            registry.delete_version(row["kernel"], row["version"])
    return found


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
    cancel = Cancel(threading.Event())
    with stop_on_signals(cancel):  # from the start: a stop asked for while the job opens ends it at its first step
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
            ctx = JobContext(job_id=job_id, kind=kind, kernel=kernel, run_id=run.info.run_id, actor=actor, workdir=Path(tmp), cancel=cancel)
            try:
                yield ctx
            except BaseException as exc:
                # a stop that was asked for ends the job cancelled, whatever the exception it caused
                # (Ctrl-C also reaches the sandbox's children, whose batch then fails)
                cancelled = cancel.requested.is_set() or isinstance(exc, KeyboardInterrupt)
                if cancelled:
                    reason = f"cancelled ({cancel.by or 'SIGINT'}){_at_step(cancel.step)}; nothing was registered"
                else:
                    reason = f"{type(exc).__name__}: {exc}".strip()
                _end(job_id, "cancelled" if cancelled else "failed", reason)
                with suppress(Exception):  # the MLflow store may be what failed: the DB row is the record
                    client.set_terminated(run.info.run_id, status="KILLED" if cancelled else "FAILED")
                if cancelled and not isinstance(exc, JobCancelled):
                    raise JobCancelled(f"job {job_id} {reason}") from exc
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # a full disk: one line, not a traceback
                    where = f" writing {exc.filename}" if exc.filename else ""
                    raise JobError(f"job {job_id} failed: no space left on device{where}; nothing was registered: free space and retry") from None
                raise
            client.set_terminated(run.info.run_id, status="FINISHED")


def _at_step(step: int | None) -> str:
    return f" at step {step}" if step is not None else ""


def _end(job_id: str, state: str, reason: str) -> None:
    """Mark an unfinished job ``failed`` or ``cancelled`` with its reason (a registered job stays so)."""
    with session_scope() as session:
        job = repo.get_job(session, job_id=job_id)
        if job.state in repo.UNFINISHED:
            repo.transition(session, job=job, to_state=state, message=reason[:2000])
