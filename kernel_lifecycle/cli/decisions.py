"""`kernel-lifecycle gate|approve|promote`: turning boundary reports into decisions."""

from __future__ import annotations

import typer

from kernel_lifecycle.cli.common import ActorOption, JsonOption, decide
from kernel_lifecycle.cli.output import console, print_json, print_table


def gate(
    kernel: str = typer.Argument(..., help="Kernel name"),
    version: str = typer.Argument(..., help="Candidate version"),
    json_out: bool = JsonOption,
) -> None:
    """Compare a candidate's boundary report with the champion's under the active policy."""
    from kernel_lifecycle.promotion import run_gate

    result = run_gate(kernel, version)
    if json_out:
        print_json(result)
    else:
        print_table(
            f"gate {kernel}@{version} vs champion {result['champion'] or '(none)'}: {result['status'].upper()}",
            ["rule", "skill", "ok", "message"],
            ((r["rule"], r.get("skill") or "", "yes" if r["passed"] else "NO", r["message"]) for r in result["reasons"]),
        )
    if result["status"] != "passed":
        raise typer.Exit(code=1)


def approve(
    kernel: str = typer.Argument(..., help="Kernel name"),
    version: str = typer.Argument(..., help="Version to approve"),
    actor: str = ActorOption,
    note: str = typer.Option(None, "--note", help="Why, for the audit trail."),
    json_out: bool = JsonOption,
) -> None:
    """Approve a gated version for promotion (only the policy's approvers may)."""
    result = decide("approve", {"kernel": kernel, "version": version, "note": note}, actor=actor)
    if json_out:
        print_json(result)
    else:
        console.print(f"{result['approver']} approved {kernel}@{version} ({result['approvals']} approval(s))")


def promote(
    kernel: str = typer.Argument(..., help="Kernel name"),
    version: str = typer.Argument(..., help="Version to make champion"),
    actor: str = ActorOption,
    reason: str = typer.Option(None, "--reason", help="Why, for the audit trail."),
    json_out: bool = JsonOption,
) -> None:
    """Make a version champion: needs a passed gate against the current champion and approvals."""
    result = decide("promote", {"kernel": kernel, "version": version, "reason": reason}, actor=actor)
    if json_out:
        print_json(result)
    else:
        console.print(f"{kernel}: champion v{result['previous'] or '-'} -> v{result['champion']} (by {result['actor']})")


def register(root: typer.Typer) -> None:
    root.command("gate")(gate)
    root.command("approve")(approve)
    root.command("promote")(promote)
