"""Where a job runs: ``local`` (in the process that asked) or ``ray`` (a Ray cluster).

``submit("module:function", payload, actor=..., trigger_id=..., resources=...)`` runs
``function(payload, *, actor, trigger_id)`` and returns a :class:`Handle`; ``handle.result()``
waits for it. The payload and the result are JSON-able dicts: what crosses to a Ray worker is
the function's name, its options and the environment the worker needs (``worker_env``), never a
model object. The function opens its job itself (``jobs.runner.job_run``), which records
``placement()``: the executor, and under Ray the task id, so the driver can find the job a
task opened and fail it when the worker dies.

Settings: ``KL_EXECUTOR=local|ray`` (default ``local``, which never imports Ray) and
``KL_RAY_ADDRESS`` (unset: a local Ray instance that lives as long as the command).
Ray retries nothing (``max_retries=0``): a retry is a new job, and that is the scheduler's
lease-guarded retry, so a fire still runs once.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import importlib
import json
import logging
import os
import shlex
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import redact, session_scope
from kernel_lifecycle.errors import ConfigurationError, JobError
from kernel_lifecycle.registry.tracking import client as mlflow_client
from kernel_lifecycle.settings import CHOICES, get_settings

if TYPE_CHECKING:
    from types import ModuleType

    from ray import ObjectRef

    from kernel_lifecycle.db.models import Job

logger = logging.getLogger(__name__)

EXECUTORS = CHOICES["executor"]
RESOURCES = ("num_cpus", "num_gpus")


@dataclass(frozen=True)
class Placement:
    """Where the current work runs, as its job row records it."""

    executor: str = "local"
    ref: str | None = None  # the Ray task id, or the Ray job submission id of a detached job
    # whose death ends the job: a Ray task's driver (Ray kills a task whose owner died, so a
    # restarted scheduler on the driver's host judges it as today); None: this process
    owner: str | None = None


_placement: contextvars.ContextVar[Placement] = contextvars.ContextVar("kl_placement", default=Placement())


def placement() -> Placement:
    """Where the work this code runs for is placed: ``Placement()`` (local) by default."""
    return _placement.get()


@contextlib.contextmanager
def placed(where: Placement) -> Iterator[None]:
    token = _placement.set(where)
    try:
        yield
    finally:
        _placement.reset(token)


def resolve(fn: str) -> Callable[..., Any]:
    """``module:function`` -> the function; a typed error naming what is wrong."""
    module, sep, name = fn.partition(":")
    if not sep or not module or not name:
        raise ConfigurationError(f"job function {fn!r} must be given as 'module:function'")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"job function {fn!r} cannot be imported: {exc}") from exc


def check_resources(resources: dict[str, float] | None) -> dict[str, float]:
    """Declared resources of a job: ``num_cpus`` (default 1) and ``num_gpus`` (default 0)."""
    out = {"num_cpus": 1.0, "num_gpus": 0.0}
    for key, value in (resources or {}).items():
        if key not in RESOURCES:
            raise ConfigurationError(f"unknown resource {key!r}; a job declares {', '.join(RESOURCES)}")
        if value is None:
            continue
        if not isinstance(value, (int, float)) or value < 0:
            raise ConfigurationError(f"resource {key} must be a number >= 0, got {value!r}")
        out[key] = float(value)
    return out


def probe(payload: dict[str, Any], *, actor: str, trigger_id: str | None = None) -> dict[str, Any]:
    """A job function that does nothing but say where it ran and what it sees: a cluster's
    setup check (same DB, same MLflow store?), and the bench's measure of a submission's cost.
    ``payload["fail"]`` makes it raise a JobError with that message."""
    if payload.get("fail"):
        raise JobError(str(payload["fail"]))
    settings = get_settings()
    where = placement()
    return {
        "executor": where.executor, "ref": where.ref, "owner": where.owner, "host": socket.gethostname(), "pid": os.getpid(), "actor": actor,
        "trigger_id": trigger_id, "database": redact(settings.db_url), "mlflow": redact(settings.tracking_uri),
        "payload": payload,
    }


# ---- Ray: connection and the worker's environment ---------------------------------------------


def ray_module() -> ModuleType:
    try:
        import ray  # an optional extra, and seconds to import: only when KL_EXECUTOR=ray
    except ModuleNotFoundError:
        raise ConfigurationError(
            "KL_EXECUTOR=ray needs Ray: pip install 'kernel-lifecycle[ray]' (or set KL_EXECUTOR=local)"
        ) from None
    return ray


def connect() -> ModuleType:
    """The ``ray`` module, connected: to ``KL_RAY_ADDRESS``, or to a new local instance that
    ends with this process. A process already connected (a Ray worker, a test) stays so."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    address = get_settings().ray_address
    try:
        if address:
            ray.init(address=address, log_to_driver=True, configure_logging=False)
        else:
            ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at KL_RAY_ADDRESS={address}" if address else "a local Ray instance"
        raise ConfigurationError(f"cannot connect to {where}: {exc}") from exc
    return ray


def worker_env() -> dict[str, str]:
    """What a Ray worker needs to find the same lifecycle DB, MLflow store, skills and sandbox,
    resolved here so a default (a path under KL_HOME) means the same files there. A worker on
    another machine needs URLs it can reach: PostgreSQL and an MLflow server (registry/README.md)."""
    settings = get_settings()
    env = {
        "KL_HOME": str(settings.home_dir),
        "KL_DATABASE_URL": settings.db_url,
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "KL_SANDBOX": settings.sandbox,
        "KL_EXECUTOR": "ray",  # scoring inside a job fans out on the same cluster
    }
    if settings.skills_dir is not None:
        env["KL_SKILLS_DIR"] = str(settings.skills_dir.expanduser().resolve())
    return env


def _call_placed(fn: str, payload: dict[str, Any], actor: str, trigger_id: str | None, where: Placement) -> Any:
    """In the worker: run the job function with the job row's placement set."""
    get_settings.cache_clear()  # the env is the task's runtime_env, not the one at import
    with placed(where):
        return resolve(fn)(payload, actor=actor, trigger_id=trigger_id)


def _ray_task(fn: str, payload: dict[str, Any], actor: str, trigger_id: str | None, driver: str) -> Any:
    import ray

    where = Placement("ray", ray.get_runtime_context().get_task_id(), owner=driver)
    return _call_placed(fn, payload, actor, trigger_id, where)


# ---- handles ----------------------------------------------------------------------------------


@dataclass
class Handle:
    """A submitted job. ``ref``: the Ray task id (or Ray job submission id with ``detach``)."""

    executor: str
    ref: str | None
    detached: bool = False
    _object_ref: ObjectRef | None = None
    _outcome: tuple[bool, Any] | None = None  # local: (ok, result or exception)
    _seen_events: set[int] = field(default_factory=set)

    def job(self) -> Job | None:
        """The job row the submitted work opened (None before it opened one), detached from its session."""
        if self.ref is None:
            return None
        with session_scope() as session:
            job = repo.job_for_executor_ref(session, self.ref)
            if job is not None:
                session.expunge(job)
            return job

    def result(self, *, on_event: Callable[[str], None] | None = None, poll_seconds: float = 1.0) -> Any:
        """Wait for the job and return its result; raise what it raised. While a Ray task runs,
        each new state change of its job row goes to ``on_event`` (progress on the driver)."""
        if self.executor == "local":
            ok, value = self._outcome  # type: ignore[misc]
            if ok:
                return value
            raise value
        if self.detached:
            raise JobError(f"Ray job {self.ref} was submitted detached; `kernel-lifecycle jobs list` shows its job row")
        ray = ray_module()
        while True:
            ready, _ = ray.wait([self._object_ref], timeout=poll_seconds)
            if on_event is not None:
                self._stream(on_event)
            if ready:
                break
        try:
            return ray.get(self._object_ref)
        except ray.exceptions.RayTaskError as exc:  # the job raised: the same exception here
            try:
                cause = exc.cause
            # broad on purpose: rebuilding the task's exception here can fail in any way (e.g.
            # its class does not import on the driver); that failure is raised instead, said here
            except Exception as unrebuilt:  # noqa: BLE001
                logger.warning("the exception of Ray task %s could not be rebuilt here (%s: %s); the task failed with: %s",
                               self.ref, type(unrebuilt).__name__, unrebuilt, exc)
                cause = unrebuilt
            raise (cause if isinstance(cause, Exception) else JobError(str(exc))) from None
        except ray.exceptions.RayError as exc:  # the worker, its node or the task itself was lost
            raise self._worker_lost(exc) from None

    def _stream(self, on_event: Callable[[str], None]) -> None:
        with session_scope() as session:
            job = repo.job_for_executor_ref(session, self.ref) if self.ref else None
            for event in job.events if job is not None else []:
                if event.id not in self._seen_events:
                    self._seen_events.add(event.id)
                    on_event(f"job {job.id[:12]} {event.from_state or '-'} -> {event.to_state}: {event.message or ''}")

    def _worker_lost(self, exc: Exception) -> JobError:
        """Fail the job the lost task had opened, with the cause; registration happens only at
        the job's end, in one transaction with its final state, so nothing was registered."""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        cause = f"the Ray worker running it was lost ({type(exc).__name__}: {first})"[:2000]
        run_id = None
        with session_scope() as session:
            job = repo.job_for_executor_ref(session, self.ref) if self.ref else None
            job_id = job.id if job is not None else None
            if job is not None and job.state in repo.UNFINISHED:
                repo.transition(session, job=job, to_state="failed", message=cause)
                run_id = job.mlflow_run_id
        if run_id:
            mlflow_client().set_terminated(run_id, status="FAILED")
        what = f"job {job_id}" if job_id else f"Ray task {self.ref} (before it opened a job)"
        return JobError(f"{what} failed: {cause}")


# ---- submit -----------------------------------------------------------------------------------


def submit(
    fn: str,
    payload: dict[str, Any],
    *,
    actor: str,
    trigger_id: str | None = None,
    resources: dict[str, float] | None = None,
    detach: bool = False,
    executor: str | None = None,
) -> Handle:
    """Run ``fn(payload, *, actor, trigger_id)`` on the configured executor (``KL_EXECUTOR``).

    ``local`` runs it now, in this process, and the handle holds its outcome. ``ray`` submits a
    Ray task declaring ``resources`` and returns at once; ``detach`` submits a Ray job instead,
    which outlives this process (needs ``KL_RAY_ADDRESS``: a local instance ends with it).
    """
    executor = executor or get_settings().executor
    if executor not in EXECUTORS:
        raise ConfigurationError(f"unknown executor {executor!r}; executors: {', '.join(EXECUTORS)}")
    try:
        json.dumps(payload)
    except TypeError as exc:
        raise ConfigurationError(f"a job's payload must be JSON-able (it crosses to a Ray worker): {exc}") from exc
    declared = check_resources(resources)
    function = resolve(fn)  # fail here, not in a worker, on a misspelled name
    if executor == "local":
        if detach:
            raise ConfigurationError("--detach needs KL_EXECUTOR=ray: a local job runs in this process")
        with placed(Placement()):
            try:
                outcome: tuple[bool, Any] = (True, function(payload, actor=actor, trigger_id=trigger_id))
            # broad on purpose: whatever the job raised is handed to result(), which raises it
            # (not swallowed; its traceback is also at DEBUG here)
            except Exception as exc:  # noqa: BLE001
                logger.debug("local job %s raised; result() raises it", fn, exc_info=True)
                outcome = (False, exc)
        return Handle("local", None, _outcome=outcome)
    if detach:
        return _submit_ray_job(fn, payload, actor=actor, trigger_id=trigger_id, resources=declared)
    ray = connect()
    task = ray.remote(_ray_task).options(
        num_cpus=declared["num_cpus"],
        num_gpus=declared["num_gpus"],
        max_retries=0,  # retries are the scheduler's (a new job under the same lease)
        runtime_env={"env_vars": worker_env()},
        name=f"kl:{fn.rpartition(':')[2]}",
    )
    object_ref = task.remote(fn, payload, actor, trigger_id, repo.process_owner())
    return Handle("ray", object_ref.task_id().hex(), _object_ref=object_ref)


def _submit_ray_job(fn: str, payload: dict[str, Any], *, actor: str, trigger_id: str | None, resources: dict[str, float]) -> Handle:
    """A Ray job (the Jobs API, as ``ray job submit --no-wait``): its entrypoint runs the job
    function on the cluster and lives on when this command ends."""
    address = get_settings().ray_address
    if not address:
        raise ConfigurationError(
            "--detach needs KL_RAY_ADDRESS (a Ray cluster that outlives this command); "
            "without it the local Ray instance ends with the command"
        )
    ray_module()
    from ray.job_submission import JobSubmissionClient

    submission_id = f"kl-{uuid.uuid4().hex[:16]}"
    argv = ["python", "-m", "kernel_lifecycle.executor", fn, json.dumps(payload), "--actor", actor, "--ref", submission_id]
    if trigger_id:
        argv += ["--trigger-id", trigger_id]
    try:
        # a GCS address ("host:6379") is looked up to the cluster's dashboard, where jobs are submitted
        client = JobSubmissionClient(address)
        client.submit_job(
            entrypoint=shlex.join(argv),
            submission_id=submission_id,
            runtime_env={"env_vars": worker_env()},
            entrypoint_num_cpus=resources["num_cpus"],
            entrypoint_num_gpus=resources["num_gpus"],
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot submit a Ray job to KL_RAY_ADDRESS={address} (a detached job needs the cluster's "
            f"dashboard, `ray start --head --include-dashboard=true`): {exc}"
        ) from exc
    return Handle("ray", submission_id, detached=True)


def main(argv: list[str] | None = None) -> int:
    """Entrypoint of a detached Ray job: ``python -m kernel_lifecycle.executor FN PAYLOAD --actor A --ref ID``."""
    parser = argparse.ArgumentParser(prog="python -m kernel_lifecycle.executor")
    parser.add_argument("fn")
    parser.add_argument("payload")
    parser.add_argument("--actor", required=True)
    parser.add_argument("--ref", required=True)
    parser.add_argument("--trigger-id", default=None)
    args = parser.parse_args(argv)
    result = _call_placed(args.fn, json.loads(args.payload), args.actor, args.trigger_id, Placement("ray", args.ref))
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    # lazy on purpose: ``python -m`` runs this file as ``__main__``, a second copy of the
    # module; the placement must be set in the one the job's code imports
    from kernel_lifecycle.executor import main as imported_main

    sys.exit(imported_main())
