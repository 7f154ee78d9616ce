"""`kernel-lifecycle jobs`: build the demo base, distill, upskill, downskill; list and show jobs.

upskill and downskill take their plan from the kernel's active policy; options override it.
"""

from __future__ import annotations

import typer

from kernel_lifecycle.cli.common import ActorOption, JsonOption, default_actor
from kernel_lifecycle.cli.output import console, print_json, print_table

jobs_app = typer.Typer(help="Jobs that change kernels, and their history.", no_args_is_help=True)


@jobs_app.command("build-base")
def build_base(force: bool = typer.Option(False, "--force", help="Rebuild even if cached."), json_out: bool = JsonOption) -> None:
    """Build (or reuse from its content-addressed cache) the demo base model and report its skills."""
    from kernel_lifecycle.models.demo_base import build_demo_base

    build = build_demo_base(force=force, progress=not json_out)
    data = {"path": str(build.path), "sha256": build.sha256, "metrics": build.metrics,
            "seconds": build.seconds, "cached": build.cached}
    if json_out:
        print_json(data)
    else:
        how = "reused from cache" if build.cached else "built"
        console.print(f"demo base {build.path} (sha256 {build.sha256[:12]}), {how}; build took {build.seconds:.0f} s")
        for skill, value in build.metrics.items():
            console.print(f"  {skill}: {value:.3f}")


def _result(kv, json_out: bool) -> None:  # noqa: ANN001
    if json_out:
        print_json(kv.as_dict())
    else:
        console.print(f"registered {kv.name} version {kv.version} as candidate (job {kv.tags.get('kernel.job_id', '')[:12]})")


@jobs_app.command()
def distill(
    kernel: str = typer.Argument(..., help="Name of the new kernel"),
    skill: list[str] = typer.Option(..., "--skill", help="A skill whose train split is the task's data (repeatable)."),
    teacher: str = typer.Option(None, "--teacher", help="Teacher: local directory or hub id (default: the demo base)."),
    student_layers: int = typer.Option(None, "--student-layers", help="Layers of the student (default: half)."),
    steps: int = typer.Option(150, "--steps"),
    lr: float = typer.Option(1e-3, "--lr"),
    actor: str = ActorOption,
    json_out: bool = JsonOption,
) -> None:
    """Distill a kernel's first version from a teacher (KL to the teacher + CE)."""
    from kernel_lifecycle.errors import NotFoundError
    from kernel_lifecycle.jobs import distill as job, specs
    from kernel_lifecycle.promotion import active_policy

    try:
        active = active_policy(kernel)
        extra = dict(
            thresholds=specs.thresholds_of(active.policy), harness=specs.harness_of(active.policy),
            policy_sha256=active.sha256, report_skills=specs.policy_skills(active.policy),
        )
    except NotFoundError:  # a kernel may be distilled before its policy is applied
        extra = {}
    spec = job.DistillSpec(kernel=kernel, skills=list(skill), teacher=teacher, student_layers=student_layers, steps=steps, lr=lr, **extra)
    _result(job.run(spec, actor=actor or default_actor()), json_out)


@jobs_app.command()
def upskill(
    kernel: str = typer.Argument(..., help="Kernel (its champion is the parent unless --from is given)"),
    from_ref: str = typer.Option(None, "--from", help="Parent version: NAME@VERSION or NAME@alias."),
    steps: int = typer.Option(None, "--steps", help="Override the policy plan's steps."),
    lr: float = typer.Option(None, "--lr", help="Override the policy plan's learning rate."),
    actor: str = ActorOption,
    json_out: bool = JsonOption,
) -> None:
    """Teach the policy's new skill with a LoRA adapter (replaying retained skills)."""
    from kernel_lifecycle.jobs import specs, upskill as job
    from kernel_lifecycle.promotion import active_policy

    active = active_policy(kernel)
    spec = specs.upskill_spec(active.policy, active.sha256, steps=steps, lr=lr, from_ref=from_ref)
    job.validate(spec)
    _result(job.run(spec, actor=actor or default_actor()), json_out)


@jobs_app.command()
def downskill(
    kernel: str = typer.Argument(..., help="Kernel (its champion is the parent unless --from is given)"),
    method: str = typer.Option(None, "--method", help="npo, grad_diff, grad_ascent or negation (default: the plan's)."),
    from_ref: str = typer.Option(None, "--from", help="Parent version: NAME@VERSION or NAME@alias."),
    steps: int = typer.Option(None, "--steps", help="Override the policy plan's steps."),
    lr: float = typer.Option(None, "--lr", help="Override the policy plan's learning rate."),
    eval_every: int = typer.Option(None, "--eval-every", help="Checkpoint (and measure) every N steps."),
    actor: str = ActorOption,
    json_out: bool = JsonOption,
) -> None:
    """Retire the policy's deprecated skill (forget + retain loss) up to the boundary checkpoint."""
    from kernel_lifecycle.jobs import downskill as job, specs
    from kernel_lifecycle.promotion import active_policy

    active = active_policy(kernel)
    spec = specs.downskill_spec(
        active.policy, active.sha256, method=method, steps=steps, lr=lr, eval_every=eval_every, from_ref=from_ref
    )
    if method is not None:
        spec.method_options = {}  # the plan's options belong to the plan's method
    job.validate(spec)
    _result(job.run(spec, actor=actor or default_actor()), json_out)


@jobs_app.command("list")
def list_(kernel: str = typer.Option(None, "--kernel"), limit: int = typer.Option(30, "--limit"), json_out: bool = JsonOption) -> None:
    """Jobs, newest first, with their state."""
    from kernel_lifecycle.db import repo
    from kernel_lifecycle.db.engine import session_scope

    with session_scope() as session:
        rows = [_job_dict(j) for j in repo.list_jobs(session, kernel=kernel, limit=limit)]
    if json_out:
        print_json(rows)
        return
    print_table(
        "jobs", ["id", "kind", "kernel", "state", "version", "executor", "created", "error"],
        ((r["id"][:12], r["kind"], r["kernel"], r["state"], r["registered_version"], r["executor"], r["created_at"], (r["error"] or "")[:60]) for r in rows),
    )


@jobs_app.command()
def show(job_id: str = typer.Argument(..., help="Job id (a unique prefix is enough)"), json_out: bool = JsonOption) -> None:
    """One job: parameters, MLflow run, state changes."""
    from kernel_lifecycle.db import repo
    from kernel_lifecycle.db.engine import session_scope

    with session_scope() as session:
        job = repo.get_job(session, job_id=job_id)
        data = {**_job_dict(job), "params": job.params, "events": [
            {"at": e.at, "from": e.from_state, "to": e.to_state, "message": e.message} for e in job.events
        ]}
    if json_out:
        print_json(data)
        return
    print_table(f"job {data['id']}", ["field", "value"], [(k, v) for k, v in data.items() if k not in ("events", "params")])
    print_table("state changes", ["at", "from", "to", "message"], ((e["at"], e["from"], e["to"], e["message"]) for e in data["events"]))


def _job_dict(job) -> dict:  # noqa: ANN001
    return {
        "id": job.id, "kind": job.kind, "kernel": job.kernel, "state": job.state,
        "registered_version": job.registered_version, "mlflow_run_id": job.mlflow_run_id,
        "trigger_id": job.trigger_id, "executor": job.executor, "executor_ref": job.executor_ref, "error": job.error, "created_at": job.created_at, "updated_at": job.updated_at,
    }


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
