"""`kernel-lifecycle kernels`: list, show, lineage, register, rollback, audit."""

from __future__ import annotations

from pathlib import Path

import typer

from kernel_lifecycle.cli.common import ActorOption, JsonOption, decide
from kernel_lifecycle.cli.output import console, print_json, print_table

app = typer.Typer(help="Kernels and their versions in the MLflow registry.", no_args_is_help=True)


def _spaced(tag: str | None) -> str:
    """'python,sql' as 'python, sql', so a narrow table wraps between skills, not inside one."""
    return ", ".join(part for part in (tag or "").split(",") if part)


def _stack(tag: str | None) -> str:
    """The adapter stack as 'upskill sql > downskill cobol' (names and hashes: --json, show)."""
    entries = [e.split(":") for e in (tag or "").split(" > ") if e and e != "(none)"]
    return " > ".join(f"{e[1]} {e[2]}" if len(e) >= 3 else ":".join(e) for e in entries) or "(none)"


@app.command("list")
def list_(json_out: bool = JsonOption) -> None:
    """Every kernel with its latest version and aliases."""
    from kernel_lifecycle.registry.client import list_kernels

    kernels = list_kernels()
    if json_out:
        print_json(kernels)
        return
    print_table(
        "kernels",
        ["kernel", "latest", "aliases", "description"],
        (
            (
                k["name"],
                k["latest_version"],
                ", ".join(f"{a}=v{v}" for a, v in k["aliases"].items()),
                k["description"],
            )
            for k in kernels
        ),
    )


@app.command()
def show(
    ref: str = typer.Argument(..., help="NAME, NAME@VERSION or NAME@alias"),
    probes: bool = typer.Option(False, "--probes", help="List every probe of the version's boundary report (its MLflow run's per-probe table)."),
    failed: bool = typer.Option(False, "--failed", help="With --probes: only the probes that failed."),
    json_out: bool = JsonOption,
) -> None:
    """One kernel version with its lineage tags; a bare NAME lists its versions."""
    from kernel_lifecycle.registry.client import list_versions, resolve

    if probes or failed:
        _show_probes(resolve(ref if "@" in ref else f"{ref}@champion"), failed=failed, json_out=json_out)
        return

    if "@" not in ref:
        versions = list_versions(ref)
        if json_out:
            print_json([v.as_dict() for v in versions])
            return
        print_table(
            f"versions of {ref}",
            ["version", "aliases", "parent", "job", "retained", "retired", "gate"],
            (
                (
                    v.version,
                    ", ".join(v.aliases),
                    v.parent_version,
                    (v.tags.get("kernel.job_id") or "")[:12],
                    _spaced(v.tags.get("kernel.skills.retained")),
                    _spaced(v.tags.get("kernel.skills.retired")),
                    v.tags.get("gate.status"),
                )
                for v in versions
            ),
        )
        return
    kv = resolve(ref)
    if json_out:
        print_json(kv.as_dict())
        return
    print_table(
        f"{kv.name} version {kv.version}",
        ["field", "value"],
        [
            ("aliases", ", ".join(kv.aliases)),
            ("run", kv.run_id),
            ("source", kv.source),
            ("created", kv.created_at),
            *sorted(kv.tags.items()),
        ],
    )
    if kv.description:
        console.print(kv.description)


def _show_probes(kv, *, failed: bool, json_out: bool) -> None:  # noqa: ANN001 - a KernelVersion
    """``show --probes``: the per-probe table the version's report logged on its run."""
    from kernel_lifecycle.boundary.tracking import PROBE_COLUMNS, load_probe_table
    from kernel_lifecycle.errors import NotFoundError

    rows = load_probe_table(kv.run_id) if kv.run_id else []
    if not rows:
        raise NotFoundError(f"{kv.ref} has no per-probe table on its run (registered before evaluations logged one); "
                            f"`kernel-lifecycle boundary inventory {kv.ref}` measures it again")
    shown = [r for r in rows if not (failed and r["passed"])]
    if json_out:
        print_json(shown)
        return
    first_line = lambda text: (str(text).strip().splitlines() or [""])[0][:60]  # noqa: E731
    print_table(
        f"{kv.ref}: {len(shown)} {'failed ' if failed else ''}probes of {len(rows)} "
        f"({sum(bool(r['passed']) for r in rows)} passed)",
        list(PROBE_COLUMNS),
        ([r["skill"], r["split"], r["task_id"], r["family"], "yes" if r["passed"] else "no", r["reason"], first_line(r["completion"])]
         for r in shown),
    )


@app.command()
def lineage(ref: str = typer.Argument(..., help="NAME@VERSION (default: champion)"), json_out: bool = JsonOption) -> None:
    """Walk a version's parents down to the root: v3 -> v2 -> v1."""
    from kernel_lifecycle.registry.client import lineage as walk, resolve

    kv = resolve(ref)
    chain = walk(kv.name, kv.version)
    if json_out:
        print_json([v.as_dict() for v in chain])
        return
    console.print(" -> ".join(f"v{v.version}" for v in chain))
    print_table(
        f"lineage of {kv.name}@{kv.version}",
        ["version", "parent", "job", "policy sha256", "adapters", "retained", "retired"],
        (
            (
                v.version,
                v.parent_version or "(root)",
                (v.tags.get("kernel.job_id") or "")[:8],
                (v.tags.get("kernel.policy_sha256") or "")[:8],
                _stack(v.tags.get("kernel.adapters")),
                _spaced(v.tags.get("kernel.skills.retained")),
                _spaced(v.tags.get("kernel.skills.retired")),
            )
            for v in chain
        ),
    )


@app.command("register")
def register_(
    bundle: Path = typer.Argument(..., help="A bundle directory: manifest.json + adapters/<name>/"),
    description: str = typer.Option(None, help="Version description shown in the MLflow UI."),
    json_out: bool = JsonOption,
) -> None:
    """Register a kernel version from a bundle (hashes verified first; nothing written on error)."""
    from kernel_lifecycle.db.engine import ensure_current
    from kernel_lifecycle.registry.client import register_version

    ensure_current()  # refuse before writing to MLflow if the lifecycle DB is unusable
    kv = register_version(bundle, description=description)
    if json_out:
        print_json(kv.as_dict())
    else:
        console.print(f"registered {kv.name} version {kv.version} (run {kv.run_id})")


@app.command()
def rollback(
    name: str = typer.Argument(..., help="Kernel name"),
    to_version: str = typer.Option(..., "--to", help="The earlier version to make champion."),
    reason: str = typer.Option(..., "--reason", help="Why: goes into the audit table."),
    actor: str = ActorOption,
    json_out: bool = JsonOption,
) -> None:
    """Move `champion` back to an earlier version; audited with actor, from, to and reason."""
    result = decide("rollback", {"kernel": name, "to_version": to_version, "reason": reason}, actor=actor)
    if json_out:
        print_json(result)
    else:
        console.print(f"{name}: champion v{result['from']} -> v{result['to']} (by {result['actor']}: {reason})")


@app.command()
def audit(
    name: str = typer.Argument(None, help="Kernel name (default: all)"),
    limit: int = typer.Option(50, help="How many events, newest first."),
    reverted: bool = typer.Option(False, "--reverted", help="Only the moves the guard reverted (alias_reverted, tag_reverted)."),
    json_out: bool = JsonOption,
) -> None:
    """The audit trail: who did what to which version, when and why; the guard's reverts included.
    `principal` is the identity the lifecycle service verified (team mode); empty where the actor
    was only typed (embedded mode)."""
    rows = decide("audit", {"kernel": name, "limit": limit, "reverted": reverted}, actor=None)["rows"]
    if json_out:
        print_json(rows)
        return
    print_table(
        "audit",
        ["at", "actor", "principal", "action", "outcome", "kernel", "alias", "from", "to", "reason"],
        (
            (r["at"], r["actor"], r["principal"] or "", _action(r), r["outcome"], r["kernel"], r["alias"], r["from"], r["to"], r["reason"])
            for r in rows
        ),
    )


def _action(row: dict) -> str:
    """A guard's revert names what it reverted: the move someone made, and how it arrived."""
    drift = (row.get("details") or {}).get("drift")
    if not drift:
        return row["action"]
    if "alias" in drift:
        moved = f"v{drift['mlflow_version']}" if drift.get("mlflow_version") else "nothing"
    else:
        moved = f"{drift['tag']}={str(drift.get('mlflow_value'))[:30]}"
    return f"{row['action']} (outside move to {moved}, seen by {row['details'].get('source', '?')})"


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="kernels")
