"""`kernel-lifecycle boundary ...`: the boundary regression harness from the command line.

``score`` judges external samples (HumanEval's JSONL sample format) with a scorer by name
and writes one verdict line per sample; the summary goes to stderr so stdout stays JSONL.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from kernel_lifecycle.cli.output import err_console

boundary_app = typer.Typer(help="Boundary regression harness: scorers, sandbox, reports.", no_args_is_help=True)


@boundary_app.command("score")
def score(
    samples_file: Path = typer.Argument(..., help="JSONL samples: task_id, prompt, completion, test, entry_point."),
    scorer: str = typer.Option(..., "--scorer", help="python_tests, cobol_compile or sql_exec."),
    out: Path = typer.Option(None, "--out", help="Write verdict lines here instead of stdout."),
    workers: int = typer.Option(2, "--workers", min=1, help="Programs run at the same time (under KL_EXECUTOR=ray: per Ray task)."),
    timeout: float = typer.Option(None, "--timeout", min=0.1, help="Seconds per program (default: the scorer's)."),
) -> None:
    """Score samples in the sandbox: one {task_id, passed, result} line per sample.

    Under KL_EXECUTOR=ray the samples are scored in batches across Ray workers, each in the
    same sandbox; the verdicts are the same."""
    from kernel_lifecycle.boundary.scorers import read_samples
    from kernel_lifecycle.boundary.scorers.fanout import scorer_for

    judge = scorer_for(scorer)  # unknown name: NotFoundError listing the known ones
    samples = read_samples(samples_file)
    started = time.monotonic()
    verdicts = judge.score(samples, workers=workers, timeout=timeout)
    seconds = time.monotonic() - started
    lines = "".join(
        json.dumps({"task_id": v.task_id, "passed": v.passed, "result": v.result}) + "\n" for v in verdicts
    )
    if out is None:
        sys.stdout.write(lines)
        sys.stdout.flush()
    else:
        out.write_text(lines, encoding="utf-8")
    n = len(verdicts)
    passed = sum(v.passed for v in verdicts)
    no_code = sum(v.no_code for v in verdicts)
    rate = passed / n if n else 0.0
    err_console.print(
        f"{scorer}: n={n} passed={passed} rate={rate:.3f} no_code={no_code} time={seconds:.2f}s"
        + (f" -> {out}" if out is not None else ""),
        highlight=False,
    )


@boundary_app.command("inventory")
def inventory(
    ref: str = typer.Argument(..., help="KERNEL (its champion), KERNEL@VERSION or KERNEL@alias"),
    diff: str = typer.Option(None, "--diff", help="Another version to compare with: VERSION, alias or KERNEL@..."),
    split: str = typer.Option("test", "--split", help="the split to report as the gate split: test, dev or fresh (fresh is always measured too)"),
    by_family: bool = typer.Option(False, "--by-family", help="Break every skill down by problem family."),
    max_problems: int = typer.Option(50, "--max-problems", min=1, help="Probes per skill (the first N of the split)."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Generation budget per probe."),
    remeasure: bool = typer.Option(False, "--remeasure", help="Re-measure the version on today's split files under the harness it was registered with (and log it on its run)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Evaluate every known skill on a kernel version (all checks); --diff shows per-skill changes."""
    if remeasure:
        _remeasure(ref, json_out)
        return
    from kernel_lifecycle.boundary.inventory import (
        DIFF_COLUMNS,
        FAMILY_COLUMNS,
        INVENTORY_COLUMNS,
        diff_rows,
        family_rows,
        inventory_harness,
        inventory_of,
        inventory_rows,
        report_summary,
    )
    from kernel_lifecycle.cli.output import console, print_json, print_table
    from kernel_lifecycle.errors import KernelLifecycleError

    if split not in ("test", "dev", "fresh"):
        raise KernelLifecycleError(f"--split must be test, dev or fresh, got {split!r}")
    harness = inventory_harness(split=split, max_problems=max_problems, max_new_tokens=max_new_tokens)
    report = inventory_of(ref, harness)
    other = None
    if diff:
        # the same harness for both: the diff is refused otherwise (scorer parity)
        other = inventory_of(diff if "@" in diff else f"{report.kernel}@{diff}", harness)
    if json_out:
        data = {"report": report_summary(report)}
        if by_family:
            data["families"] = [dict(zip(["skill", "split", "family", "problems", "value"], r)) for r in family_rows(report)]
        if other is not None:
            data["diff"] = {
                "against": report_summary(other),
                "rows": [dict(zip(["skill", "metric", "before", "after", "change", "interval", "significant"], r)) for r in diff_rows(other, report)],
            }
        print_json(data)
        return
    where = f"{split}, first {max_problems} probes per skill, greedy, {max_new_tokens} tokens, harness {report.harness_hash}"
    print_table(f"skill inventory of {report.kernel}@{report.version} ({where})", INVENTORY_COLUMNS, inventory_rows(report))
    if by_family:
        print_table(f"{report.kernel}@{report.version} by family", FAMILY_COLUMNS, family_rows(report))
    if other is not None:
        print_table(
            f"{report.kernel}: v{other.version} -> v{report.version} (* = paired 95% interval excludes 0)",
            DIFF_COLUMNS,
            diff_rows(other, report),
        )
    for check in report.checks:
        mark = "[green]ok[/green]" if check.passed else "[red]FAILED[/red]"
        console.print(f"  {mark} {check.name}: {check.detail}", highlight=False)


def _remeasure(ref: str, json_out: bool) -> None:
    """``inventory --remeasure``: today's splits, the registered harness; the kernel's policy names its packs."""
    from kernel_lifecycle.boundary.inventory import INVENTORY_COLUMNS, changed_splits, inventory_rows, remeasure_version, report_summary
    from kernel_lifecycle.boundary.skills import skill_sources
    from kernel_lifecycle.cli.output import console, print_json, print_table
    from kernel_lifecycle.errors import NotFoundError
    from kernel_lifecycle.policy.active import active_policy

    try:
        sources = active_policy(ref.partition("@")[0]).policy.skills.sources()
    except NotFoundError:
        sources = {}
    with skill_sources(sources):
        registered, report = remeasure_version(ref)
    changed = changed_splits(registered, report)
    if json_out:
        print_json({"registered": report_summary(registered), "remeasured": report_summary(report),
                    "changed_splits": [dict(zip(["split", "before", "after"], row)) for row in changed]})
        return
    print_table(f"{report.kernel}@{report.version} re-measured on today's splits (harness {report.harness_hash}; "
                f"registered {registered.harness_hash})", INVENTORY_COLUMNS, inventory_rows(report))
    if changed:
        print_table("split files changed since it was registered", ["skill/split", "registered", "today"], changed)
    else:
        console.print("no split file changed since it was registered", highlight=False)


@boundary_app.command("localize")
def localize(
    ref: str = typer.Argument(..., help="KERNEL@VERSION (or KERNEL@alias, KERNEL for its champion)"),
    skill: str = typer.Option(..., "--skill", help="The skill to localize."),
    method: str = typer.Option("ablation", "--method", help="ablation (every head alone) or compressed (random subsets + Lasso)."),
    also: list[str] = typer.Option(None, "--also", help="Other skills to map beside it (default: the version's retained skills)."),
    k: int = typer.Option(3, "--k", min=1, help="Top heads reported and ablated together (against k random heads)."),
    probes: int = typer.Option(32, "--probes", min=2, help="dev probes per skill (the first N)."),
    ablation: str = typer.Option("mean", "--ablation", help="mean (a head's mean output) or zero."),
    measurements: int = typer.Option(None, "--measurements", min=1, help="compressed: passes over the probes (default: twice as many probe rows as heads, at least 8 passes)."),
    seeds: int = typer.Option(5, "--random-seeds", min=1, help="Draws of k random heads to compare the top k with."),
    log: bool = typer.Option(True, "--log/--no-log", help="Log heatmaps + JSON on the version's MLflow run and page."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Which attention heads carry a skill: per-head ablation effects on the solutions' log-likelihood."""
    import tempfile

    from kernel_lifecycle.boundary.localize import check_options, localization_json, map_skills, shared_heads, write_maps
    from kernel_lifecycle.boundary.skills import skills_named
    from kernel_lifecycle.boundary.tracking import log_localization
    from kernel_lifecycle.cli.output import console, print_json, print_table
    from kernel_lifecycle.models.loading import load_kernel
    from kernel_lifecycle.registry.client import fetch_bundle, resolve

    check_options(method=method, ablation=ablation)
    kv = resolve(ref)
    others = also if also else [s for s in kv.tags.get("kernel.skills.retained", "").split(",") if s]
    names = [skill, *[s for s in dict.fromkeys(others) if s != skill]]
    skills = skills_named(names)  # unknown names fail before the model loads
    loaded = load_kernel(fetch_bundle(kv))
    with err_console.status(f"localizing {', '.join(names)} on {kv.ref} ({method})"):
        maps = map_skills(
            loaded.model, loaded.tokenizer, skills, method=method, ablation=ablation, probes=probes, k=k,
            random_seeds=seeds, measurements=measurements,
        )
    context = {"kernel": kv.name, "version": kv.version, "method": method, "ablation": ablation, "split": "dev"}
    if log:
        with tempfile.TemporaryDirectory() as tmp:
            files = write_maps(maps, skill, Path(tmp), **context)
            context["artifacts"] = log_localization(kv, files, method=method, skills=names)
    if json_out:
        print_json(localization_json(maps, skill, **context))
        return
    rows = []
    for name, m in maps.items():
        top = ", ".join(f"L{t['layer']}H{t['head']} {t['effect']:+.3f}" for t in m.top)
        rnd = m.random_ablation
        verdict = "beats random" if m.extra.get("beats_random") else "[red]does not beat random[/red]"
        rows.append([
            name, top, f"{m.topk_ablation['change']:+.3f}", f"{rnd['mean']:+.3f} (min {rnd['min']:+.3f})", verdict,
            f"{m.forward_passes:g} / {m.seconds:.1f}s",
        ])
    print_table(
        f"where skills live in {kv.ref} ({method}, {ablation}-ablation, {probes} dev probes; change in solution log-likelihood)",
        ["skill", f"top {k} heads", f"top {k} together", f"{k} random ({seeds} seeds)", "map", "passes / time"],
        rows,
    )
    for name, heads in shared_heads(maps, skill).items():
        console.print(f"  {skill}'s top heads also in {name}'s top {k}: {heads or 'none'}", highlight=False)
    if log:
        console.print(f"  heatmaps and JSON on run {kv.run_id}: {context['artifacts']}/", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(boundary_app, name="boundary")
