"""`kernel-lifecycle scheduler sync|list|run`: policies' triggers as scheduled jobs, run exactly once."""

from __future__ import annotations

import logging
import os
import sys

import typer

from kernel_lifecycle.cli.common import JsonOption
from kernel_lifecycle.cli.output import console, err_console, print_json

scheduler_app = typer.Typer(help="Schedule the policies' triggers and run them.", no_args_is_help=True)


@scheduler_app.command("sync")
def sync_cmd(
    json_out: bool = JsonOption,
    misfire_grace: int = typer.Option(3600, "--misfire-grace", min=1, help="Seconds a late cron fire may still run."),
    test_second: str = typer.Option(
        None, "--test-second", hidden=True, help="Tests only: an APScheduler cron `second` field added to cron triggers."
    ),
) -> None:
    """Add, replace and remove scheduled jobs to match the active policies. Exit 1 if a policy is refused."""
    from kernel_lifecycle.errors import PolicyError
    from kernel_lifecycle.scheduler.sync import sync

    report = sync(second=test_second, misfire_grace=misfire_grace)
    if json_out:
        print_json(report.as_dict())
    else:
        for label in ("added", "replaced", "removed", "unchanged", "already_fired", "kept_refused"):
            for job_id in getattr(report, label):
                console.print(f"{label.replace('_', ' ')}: {job_id}", highlight=False, markup=False, emoji=False)
        if not any(getattr(report, k) for k in ("added", "replaced", "removed", "unchanged", "already_fired", "kept_refused")):
            console.print("no scheduled triggers", highlight=False)
    for line in report.overdue:
        err_console.print(f"overdue sunset: {line}", highlight=False, soft_wrap=True, markup=False, emoji=False)
    if report.refused:
        for refusal in report.refused:
            err_console.print(f"refused: {refusal}", highlight=False, soft_wrap=True, markup=False, emoji=False)
        kernels = ", ".join(r.kernel for r in report.refused)
        raise PolicyError(
            f"{len(report.refused)} policy snapshot(s) refused ({kernels}); their previous schedule is kept. "
            "Fix the policy file and run `kernel-lifecycle policies apply FILE`, then sync again"
        )


@scheduler_app.command("list")
def list_cmd(json_out: bool = JsonOption) -> None:
    """Scheduled jobs: id, kernel, plan, trigger, next fire time."""
    from kernel_lifecycle.scheduler.sync import scheduled

    rows = scheduled()
    if json_out:
        print_json(rows)
        return
    from rich.table import Table
    from rich.text import Text

    # Text cells: ids such as `k:sunset:downskill` must not become markup or emoji
    table = Table(title="scheduled triggers")
    for column in ("id", "kernel", "plan", "trigger", "next fire (UTC)"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(*(Text(str(r[k] or "-")) for k in ("id", "kernel", "plan", "trigger", "next_fire_time")))
    console.print(table)


@scheduler_app.command("run")
def run_cmd(
    once: bool = typer.Option(False, "--once", help="Stop after this process has run one fire."),
    duration: float = typer.Option(None, "--for", min=0.0, help="Stop after this many seconds."),
    poll: float = typer.Option(1.0, "--poll", min=0.05, help="Seconds between re-reads of the shared job store."),
    stop_timeout: float = typer.Option(
        30.0, "--stop-timeout", min=0.0, help="On SIGTERM/SIGINT, seconds to let the running fire finish before failing it."
    ),
    handler: str = typer.Option(
        None, "--handler", hidden=True, help="module:function that runs a plan (default kernel_lifecycle.pipeline:run_plan)."
    ),
) -> None:
    """Run the scheduler service: fires each due trigger once across all running schedulers."""
    from kernel_lifecycle.scheduler.service import run_service

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kernel_lifecycle.scheduler").setLevel(logging.INFO)
    # APScheduler's own "maximum number of running instances" warning repeats our `missed` line
    logging.getLogger("apscheduler.scheduler").addFilter(
        lambda record: "maximum number of running instances" not in record.getMessage()
    )
    summary = run_service(once=once, duration=duration, poll=poll, stop_timeout=stop_timeout, handler=handler)
    if summary.abandoned:
        # the abandoned fire's worker thread cannot be interrupted; its job and lease are failed
        # already, so leave without waiting for it (the thread pool would join it at exit)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(scheduler_app, name="scheduler")
