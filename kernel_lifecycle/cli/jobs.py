"""`kernel-lifecycle jobs`: build the demo base, adapt, distill, upskill, downskill; list and show jobs.

upskill and downskill take their plan from the kernel's active policy; options override it.
"""

from __future__ import annotations

import typer

from kernel_lifecycle.cli.common import ActorOption, JsonOption, decide
from kernel_lifecycle.cli.output import console, display, print_json, print_table

jobs_app = typer.Typer(help="Jobs that change kernels, and their history.", no_args_is_help=True)


@jobs_app.command("build-base")
def build_base(
    force: bool = typer.Option(False, "--force", help="Rebuild even if cached."),
    without: str | None = typer.Option(None, "--without", help="The same recipe without this skill's data: a retrain reference."),
    json_out: bool = JsonOption,
) -> None:
    """Build (or reuse from its content-addressed cache) the demo base model and report its skills."""
    from kernel_lifecycle.demo.base_builder import build_demo_base

    build = build_demo_base(force=force, display=display(not json_out), without=without)
    data = {"path": str(build.path), "sha256": build.sha256, "metrics": build.metrics,
            "metrics_by_split": build.by_split, "seconds": build.seconds, "cached": build.cached}
    if json_out:
        print_json(data)
    else:
        how = "reused from cache" if build.cached else "built"
        console.print(f"demo base {build.path} (sha256 {build.sha256[:12]}), {how}; build took {build.seconds:.0f} s")
        for skill, value in build.metrics.items():
            others = "".join(f", {split} {m[skill]:.3f}" for split, m in build.by_split.items()
                             if split != "dev" and skill in m)
            console.print(f"  {skill}: dev {value:.3f}{others}")


def _run(kind: str, kernel: str, actor: str | None, json_out: bool, detach: bool = False, **overrides) -> None:  # noqa: ANN003
    """Submit a job: in team mode to the lifecycle service (it runs the job as your principal and
    answers when the version is registered), else here."""
    body = {"kind": kind, "kernel": kernel, "overrides": {k: v for k, v in overrides.items() if v is not None}, "detach": detach}
    def here(who: str) -> dict:
        from kernel_lifecycle.service.actions import Caller
        from kernel_lifecycle.service.jobs import job_submit

        return job_submit(body, Caller(who, False, display(not json_out)))

    done = decide("job_submit", body, actor=actor, here=here)
    if json_out:
        print_json(done)
    elif detach:
        console.print(f"submitted Ray job {done['executor_ref']}; `kernel-lifecycle jobs list` shows its job once it starts")
    else:
        console.print(f"registered {done['name']} version {done['version']} as candidate (job {done['tags'].get('kernel.job_id', '')[:12]})")


DetachOption = typer.Option(False, "--detach", help="With KL_EXECUTOR=ray and KL_RAY_ADDRESS: submit a Ray job and return at once.")


@jobs_app.command()
def adapt(
    kernel: str = typer.Argument(..., help="Name of the new kernel"),
    base: str = typer.Option(..., "--base", help="The pretrained base: a local model directory, a hub id, a .gguf file, or smollm2."),
    skill: list[str] = typer.Option(..., "--skill", help="A skill whose train split is the task's data (repeatable)."),
    rank: int = typer.Option(None, "--rank", help="LoRA rank (default 8)."),
    steps: int = typer.Option(None, "--steps", help="Training steps (default 40)."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (default 1e-3)."),
    actor: str = ActorOption,
    json_out: bool = JsonOption,
    detach: bool = DetachOption,
) -> None:
    """A kernel's first version from a pretrained base: the base unchanged plus one LoRA adapter."""
    _run("adapt", kernel, actor, json_out, detach=detach, base=base, skills=list(skill), rank=rank, steps=steps, lr=lr)


@jobs_app.command()
def distill(
    kernel: str = typer.Argument(..., help="Name of the new kernel"),
    skill: list[str] = typer.Option(..., "--skill", help="A skill whose train split is the task's data (repeatable)."),
    teacher: str = typer.Option(None, "--teacher", help="Teacher: a local directory, a hub id, a .gguf file, smollm2 or demo (default: demo, the shipped demo base)."),
    student_layers: int = typer.Option(None, "--student-layers", help="Layers of the student (default: half)."),
    steps: int = typer.Option(None, "--steps", help="Distillation steps (default 150)."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (default 1e-3)."),
    actor: str = ActorOption,
    json_out: bool = JsonOption,
    detach: bool = DetachOption,
) -> None:
    """Distill a kernel's first version from a teacher (KL to the teacher + CE)."""
    _run("distill", kernel, actor, json_out, detach=detach, skills=list(skill), teacher=teacher, student_layers=student_layers, steps=steps, lr=lr)


@jobs_app.command()
def upskill(
    kernel: str = typer.Argument(..., help="Kernel (its champion is the parent unless --from is given)"),
    from_ref: str = typer.Option(None, "--from", help="Parent version: NAME@VERSION or NAME@alias."),
    steps: int = typer.Option(None, "--steps", help="Override the policy plan's steps."),
    lr: float = typer.Option(None, "--lr", help="Override the policy plan's learning rate."),
    actor: str = ActorOption,
    json_out: bool = JsonOption,
    detach: bool = DetachOption,
) -> None:
    """Teach the policy's new skill with a LoRA adapter (replaying retained skills)."""
    _run("upskill", kernel, actor, json_out, detach=detach, steps=steps, lr=lr, from_ref=from_ref)


@jobs_app.command()
def downskill(
    kernel: str = typer.Argument(..., help="Kernel (its champion is the parent unless --from is given)"),
    method: str = typer.Option(None, "--method", help="npo, simnpo, rmu, undo, grad_diff, grad_ascent or negation (default: the plan's)."),
    from_ref: str = typer.Option(None, "--from", help="Parent version: NAME@VERSION or NAME@alias."),
    steps: int = typer.Option(None, "--steps", help="Override the policy plan's steps."),
    lr: float = typer.Option(None, "--lr", help="Override the policy plan's learning rate."),
    eval_every: int = typer.Option(None, "--eval-every", help="Checkpoint (and measure) every N steps."),
    target: str = typer.Option(None, "--target", help="all (LoRA on every layer) or localized (only the retired skill's own attention heads)."),
    actor: str = ActorOption,
    json_out: bool = JsonOption,
    detach: bool = DetachOption,
) -> None:
    """Retire the policy's deprecated skill (forget + retain loss) up to the boundary checkpoint."""
    _run("downskill", kernel, actor, json_out, detach=detach, method=method, steps=steps, lr=lr, eval_every=eval_every, from_ref=from_ref, target=target)


@jobs_app.command("list")
def list_(kernel: str = typer.Option(None, "--kernel"), limit: int = typer.Option(30, "--limit"), json_out: bool = JsonOption) -> None:
    """Jobs, newest first, with their state."""
    from kernel_lifecycle.db import repo
    from kernel_lifecycle.db.engine import session_scope

    with session_scope() as session:
        repo.fail_orphaned_jobs(session)  # shown failed at once, not running
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
        repo.fail_orphaned_jobs(session)  # shown failed at once, not running
        job = repo.get_job(session, job_id=job_id)
        data = {**_job_dict(job), "params": job.params, "events": [
            {"at": e.at, "from": e.from_state, "to": e.to_state, "message": e.message} for e in job.events
        ]}
    if json_out:
        print_json(data)
        return
    print_table(f"job {data['id']}", ["field", "value"], [(k, v) for k, v in data.items() if k not in ("events", "params")])
    print_table("state changes", ["at", "from", "to", "message"], ((e["at"], e["from"], e["to"], e["message"]) for e in data["events"]))


@jobs_app.command()
def unregistered(delete: bool = typer.Option(False, "--delete", help="Delete them from MLflow."), json_out: bool = JsonOption) -> None:
    """MLflow versions whose job failed or was cancelled after creating them (a store lost mid-registration)."""
    from kernel_lifecycle.jobs.runner import unregistered_versions

    rows = unregistered_versions(delete=delete)
    if json_out:
        print_json(rows)
        return
    print_table("versions of jobs that did not register them" + (" (deleted)" if delete else ""),
                ["kernel", "version", "job", "job state"], ((r["kernel"], r["version"], r["job_id"][:12], r["job_state"]) for r in rows))


def _job_dict(job) -> dict:  # noqa: ANN001
    return {
        "id": job.id, "kind": job.kind, "kernel": job.kernel, "state": job.state,
        "registered_version": job.registered_version, "mlflow_run_id": job.mlflow_run_id,
        "trigger_id": job.trigger_id, "executor": job.executor, "executor_ref": job.executor_ref, "error": job.error, "created_at": job.created_at, "updated_at": job.updated_at,
    }


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
