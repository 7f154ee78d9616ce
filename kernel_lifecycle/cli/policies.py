"""`kernel-lifecycle policies validate|show`: check policy files and look at what they say.

``validate`` reports every problem of every file as ``file:line: field: message`` (or JSON) and
exits 1 if there is any; ``show`` prints one parsed policy. Recording a policy in the lifecycle
DB (``apply``) uses :func:`kernel_lifecycle.policy.loader.policy_snapshot`.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import typer

from kernel_lifecycle.cli.common import JsonOption
from kernel_lifecycle.cli.output import console, err_console, print_json, print_mapping, print_table

policies_app = typer.Typer(help="Validate and inspect kernel policies (YAML).", no_args_is_help=True)


def _today(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"--today must be YYYY-MM-DD, got {value!r}") from None


@policies_app.command("validate")
def validate(
    paths: list[Path] = typer.Argument(..., help="Policy files, or folders of *.yaml files."),
    json_out: bool = JsonOption,
    today: str = typer.Option(None, "--today", help="Check dates as of this day (YYYY-MM-DD); default: today (UTC)."),
) -> None:
    """Check policy files; report every problem with file, line and field. Exit 1 if any."""
    from kernel_lifecycle.policy.loader import expand_paths, validate_files
    from kernel_lifecycle.policy.schema import PolicyContext

    files = expand_paths(paths)
    issues = validate_files(files, context=PolicyContext.default(today=_today(today)))
    bad = sorted({i.file for i in issues})
    if json_out:
        print_json(
            {
                "valid": not issues,
                "files": [str(f) for f in files],
                "invalid_files": bad,
                "issues": [i.model_dump() for i in issues],
            }
        )
    else:
        for issue in issues:
            sys.stdout.write(f"{issue}\n")
        sys.stdout.flush()
        if issues:
            err_console.print(f"{len(issues)} problem(s) in {len(bad)} of {len(files)} file(s)", highlight=False)
        elif not files:
            err_console.print("no policy files found", highlight=False)
        else:
            console.print(f"OK: {len(files)} policy file(s) valid", highlight=False)
    if issues or not files:
        raise typer.Exit(code=1)


@policies_app.command("show")
def show(
    path: Path = typer.Argument(..., help="A policy file."),
    json_out: bool = JsonOption,
) -> None:
    """Print a parsed policy (with defaults filled in) and its sha256."""
    from kernel_lifecycle.policy.loader import load_policy

    loaded = load_policy(path)
    policy = loaded.policy
    if json_out:
        print_json({"path": str(loaded.path), "sha256": loaded.sha256, "policy": policy.model_dump(mode="json")})
        return
    print_mapping(
        f"policy {policy.kernel}",
        {
            "file": loaded.path,
            "sha256": loaded.sha256,
            "description": policy.description.strip(),
            "owners": ", ".join(policy.owners),
            "approvers": f"{', '.join(policy.approvals.approvers)} (required {policy.approvals.required}, "
            f"auto_promote {'yes' if policy.approvals.auto_promote else 'no'})",
        },
    )
    rows = [
        (s.name, "retained", f">= {s.floor:.2f}", f"<= {policy.tolerance_for(s):.2f}", s.sunset or "")
        for s in policy.skills.retained
    ] + [(s.name, "retired", f"ci_high <= {s.ceiling:.2f}", "", s.sunset) for s in policy.skills.retired]
    print_table("skills", ["skill", "status", "bound", "max drop vs champion", "sunset"], rows)
    plan_rows = []
    if policy.plans.upskill:
        up = policy.plans.upskill
        plan_rows.append(
            ("upskill", up.skill, up.method, _kv(up.hyperparameters.model_dump()),
             f"replay {', '.join(up.replay.skills) or '-'} @ {up.replay.ratio}")
        )
    if policy.plans.downskill:
        down = policy.plans.downskill
        plan_rows.append(
            ("downskill", down.skill, down.method, _kv(down.hyperparameters.model_dump(exclude_none=True)),
             f"retain {', '.join(down.retain) or '-'}")
        )
    print_table("plans", ["plan", "skill", "method", "hyperparameters", "data"], plan_rows)
    trigger_rows = []
    for ident, t in zip(policy.trigger_ids(), policy.triggers):
        when = _when(policy, t)
        trigger_rows.append((ident, t.kind, when, getattr(t, "timezone", ""), t.plan, f"{t.retry.max_retries} x {t.retry.backoff_seconds:g}s"))
    print_table("triggers", ["id", "kind", "when", "timezone", "plan", "retries"], trigger_rows)
    gate = policy.gate
    print_mapping(
        "gate",
        {
            "tolerance": gate.tolerance,
            "alpha": gate.alpha,
            "min_probes": gate.min_probes,
            "required_checks": ", ".join(gate.required_checks),
            "harness": ", ".join(f"{k}={v}" for k, v in gate.harness.model_dump().items()),
        },
    )


def _kv(values: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def _when(policy, trigger) -> str:  # noqa: ANN001
    from datetime import datetime, timezone

    if trigger.kind == "cron":
        fire = trigger.build().get_next_fire_time(None, datetime.now(timezone.utc))
        return f"{trigger.cron} (next {fire:%Y-%m-%d %H:%M %Z})" if fire else trigger.cron
    if trigger.kind == "sunset":
        retired = policy.retired(trigger.skill)
        return f"sunset of {trigger.skill} ({retired.sunset})" if retired else f"sunset of {trigger.skill}"
    return "on request"


@policies_app.command("apply")
def apply(
    path: Path = typer.Argument(..., help="The policy file to make active for its kernel."),
    actor: str = typer.Option(None, "--actor", help="Who applies it, in embedded mode (default: KL_ACTOR or $USER); refused in team mode."),
    json_out: bool = JsonOption,
) -> None:
    """Validate a policy and record it (content + sha256) as its kernel's active policy."""
    from kernel_lifecycle.cli.common import decide
    from kernel_lifecycle.policy.loader import load_policy

    loaded = load_policy(path)  # validated here first: an invalid file never travels
    result = decide("policy_apply", {"path": str(path), "content": loaded.content.decode("utf-8")}, actor=actor)
    if json_out:
        print_json(result)
    else:
        state = "applied" if result["changed"] else "already active"
        console.print(f"{result['kernel']}: policy {result['sha256'][:12]} {state}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(policies_app, name="policies")
