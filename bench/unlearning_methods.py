"""Every unlearning method on the demo world: the quickstart's v2 -> downskill cobol, once per method.

The world is the quickstart's (the shipped demo base, v1 distilled on python + cobol, v2 the
policy's upskill of sql); when ``KL_HOME`` holds no v2 yet the quickstart is run first. Then, for
each method, the real downskill job runs from v2 under the shipped policy with only the method
changed (its own default options; the policy's options belong to the policy's method): the same
LoRA, steps, lr, checkpoints, boundary rule, final report and gate as the quickstart's v3. The
peer of every row is the npo row of the same invocation (the shipped default).

Per method: the boundary step; cobol on test and on fresh (value and upper bound); python's and
sql's drop from v2 on test; the relearning check (the candidate's curve against the reference's,
area and bound, steps to recover); the retain-only control; the membership gap; the gate's
verdict against v2 with its failing checks; wall time of the job. A method that reaches no
boundary gets its row with the job's refusal.

    KL_HOME=/tmp/bench-home python bench/unlearning_methods.py [--methods npo,simnpo,...] [--json out.json]

Results accumulate in --json (a rerun skips methods already there unless --again), so methods can
be run one invocation at a time on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

KERNEL = "python-kernel"


def demo_parent() -> tuple[str, object]:
    """The quickstart's v2 (building the world first when it is not there) and the policy."""
    from kernel_lifecycle.demo import quickstart
    from kernel_lifecycle.policy.loader import load_policy
    from kernel_lifecycle.resources import bundled

    v2 = quickstart._version_by_kind(KERNEL, "upskill")
    if v2 is None:
        quickstart.run()
        v2 = quickstart._version_by_kind(KERNEL, "upskill")
    return v2, load_policy(bundled("policies") / quickstart.DEMO_WORLD.policy)


def run_method(name: str, parent: str, loaded) -> dict:  # noqa: ANN001 - a LoadedPolicy
    from kernel_lifecycle import promotion
    from kernel_lifecycle.boundary.tracking import load_version_report
    from kernel_lifecycle.errors import JobError
    from kernel_lifecycle.jobs.recipes import from_policy, run_job
    from kernel_lifecycle.registry import client as registry
    from kernel_lifecycle.registry import tracking

    config = from_policy("downskill", loaded.policy, loaded.sha256, method=name, from_ref=f"{KERNEL}@{parent}")
    row: dict = {"method": name, "options": config.method_options, "steps": config.steps, "lr": config.lr}
    kv = earlier_run(name, parent)
    if kv is not None:  # the quickstart's own v3 (npo): its MLflow run's wall time
        info = tracking.client().get_run(kv.run_id).info
        row.update(seconds=round((info.end_time - info.start_time) / 1000, 1), reused=True)
    else:
        started = time.perf_counter()
        try:
            kv = run_job(config, actor="bench")
        except JobError as exc:
            row.update(seconds=round(time.perf_counter() - started, 1), refused=str(exc))
            return row
        row["seconds"] = round(time.perf_counter() - started, 1)
    report = load_version_report(kv)
    before = load_version_report(registry.get_version(KERNEL, parent))
    row["version"] = kv.version
    row["description"] = kv.description.split(". ")[0] if kv.description else ""
    skill = config.skill
    row["retired"] = {split: {"value": m.value, "ci_high": m.ci_high, "truncation": m.truncation_rate}
                      for split, m in (("test", report.skills[skill]), ("fresh", report.fresh.get(skill)))
                      if m is not None}
    row["retained_drop"] = {n: before.skills[n].value - report.skills[n].value for n in config.retain}
    row["checks"] = {
        c.name: {"passed": c.passed, "numbers": c.numbers, "curve": c.curve, "reference_curve": c.reference_curve,
                 "reference": c.reference.name if c.reference else None, "detail": c.detail}
        for c in report.checks
    }
    gate = promotion.run_gate(KERNEL, kv.version)
    row["gate"] = {"status": gate["status"], "failed": [r["message"] for r in gate["reasons"] if not r["passed"]]}
    return row


def relearning_at(name: str, at: int, parent: str, loaded) -> dict:  # noqa: ANN001 - a LoadedPolicy
    """The short form, for a machine too busy for whole jobs: train ``name`` from ``parent`` exactly
    as the job would (same adapter, batches, seed, lr) for ``at`` steps (a boundary step read off
    a job's dev curves), then only the relearning check against the job's reference and the
    retain-only control, on the gate split as the job runs them. No checkpoints, no final report,
    no gate."""
    from kernel_lifecycle.boundary.evaluate import measure_skill
    from kernel_lifecycle.boundary.reference import load_reference
    from kernel_lifecycle.boundary.relearning import relearning_check, retain_only_check
    from kernel_lifecycle.boundary.tracking import load_version_report
    from kernel_lifecycle.jobs import common
    from kernel_lifecycle.jobs.downskill import check_data, choose_relearning_reference, relearn_budget
    from kernel_lifecycle.jobs.recipes import from_policy
    from kernel_lifecycle.models.loading import load_kernel
    from kernel_lifecycle.registry import client as registry
    from kernel_lifecycle.training.data import batches, paired_batches, pad_id_of
    from kernel_lifecycle.training.lora import attach_lora
    from kernel_lifecycle.unlearning import get_method

    config = from_policy("downskill", loaded.policy, loaded.sha256, method=name, from_ref=f"{KERNEL}@{parent}")
    started = time.perf_counter()
    skills = check_data(config)
    parent_kv = registry.get_version(KERNEL, parent)
    kernel = load_kernel(registry.fetch_bundle(parent_kv))
    tokenizer, pad = kernel.tokenizer, pad_id_of(kernel.tokenizer)
    model = attach_lora(kernel.model, adapter_name="downskill", r=config.rank, alpha=config.lora_alpha, seed=config.seed)
    method = get_method(name, **config.method_options)
    forget = batches(common.encode_skills({config.skill: skills[config.skill]}, tokenizer), batch_size=config.batch_size, seed=config.seed, pad_id=pad)
    retain = batches(common.encode_skills({n: skills[n] for n in config.retain}, tokenizer), batch_size=config.batch_size, seed=config.seed + 7, pad_id=pad)
    method.run(model, paired_batches(forget, retain if method.needs_retain else None), steps=at, lr=config.lr, seed=config.seed)
    trained = time.perf_counter() - started
    model.eval()
    budget = relearn_budget(config)
    reference = choose_relearning_reference(config)
    ref_model, ref_tokenizer = load_reference(reference) if reference.kind != "none" else (None, None)
    start = load_version_report(parent_kv).skills[config.skill].value
    relearning = relearning_check(model, tokenizer, skills[config.skill], start=start, budget=budget, reference=reference,
                                  reference_model=ref_model, reference_tokenizer=ref_tokenizer)
    now = measure_skill(model, tokenizer, skill=skills[config.skill], split=budget.split, max_problems=budget.problems,
                        max_new_tokens=budget.max_new_tokens, seed=budget.seed)
    control = retain_only_check(model, tokenizer, skills[config.skill], {n: skills[n] for n in config.retain}, before=now, budget=budget)
    return {
        "method": name, "at_step": at, "train_seconds": round(trained, 1), "seconds": round(time.perf_counter() - started, 1),
        "cobol_now": {"value": now.value, "ci_high": now.ci_high, "problems": now.n_problems},
        "checks": {c.name: {"passed": c.passed, "numbers": c.numbers, "curve": c.curve, "reference_curve": c.reference_curve,
                            "reference": c.reference.name if c.reference else None, "detail": c.detail} for c in (relearning, control)},
    }


def earlier_run(name: str, parent: str):  # noqa: ANN201 - a KernelVersion or None
    """A downskill of ``name`` from ``parent`` already registered (the quickstart's v3 for npo)."""
    from kernel_lifecycle.registry import client as registry

    for kv in registry.list_versions(KERNEL):
        if kv.tags.get("kernel.job_kind") == "downskill" and f"({name}) from v{parent};" in (kv.description or ""):
            return kv
    return None


def table(rows: list[dict]) -> str:
    header = ["method", "boundary step", "cobol test (upper)", "cobol fresh (upper)", "python drop", "sql drop",
              "relearning curve: candidate / reference", "area: candidate / reference (excess upper, tol.)",
              "retain-only: cobol after", "gate", "wall s"]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for r in rows:
        if "refused" in r:
            lines.append(" | ".join([r["method"], "none: " + r["refused"][:200], *["-"] * 7, "not registered", str(r["seconds"])]))
            continue
        t, f = r["retired"]["test"], r["retired"].get("fresh", {})
        relearn, control = r["checks"].get("relearning", {}), r["checks"].get("retain_only", {})
        n, c = relearn.get("numbers", {}), control.get("numbers", {})
        curve = lambda values: " ".join(f"{v:.2f}" for v in values) or "-"  # noqa: E731
        verdict = lambda check: ("pass" if check.get("passed") else "FAIL") if check else "-"  # noqa: E731
        lines.append(" | ".join([
            r["method"], r["description"].rsplit("boundary at step ", 1)[-1],
            f"{t['value']:.3f} ({t['ci_high']:.3f})", f"{f.get('value', float('nan')):.3f} ({f.get('ci_high', float('nan')):.3f})",
            f"{r['retained_drop']['python']:+.3f}", f"{r['retained_drop']['sql']:+.3f}",
            f"{curve(relearn.get('curve', []))} / {curve(relearn.get('reference_curve', []))}",
            (f"{n['area_candidate']:.3f} / {n['area_reference']:.3f} ({n['area_excess_upper']:+.3f}, {n['tolerance']}) {verdict(relearn)}"
             if "area_candidate" in n else f"half-start rule: {verdict(relearn)}"),
            f"{c.get('after', float('nan')):.3f} {verdict(control)}" if control else "-",
            r["gate"]["status"] + "".join(f"; {m[:80]}" for m in r["gate"]["failed"]), str(r["seconds"]) + (" (quickstart)" if r.get("reused") else ""),
        ]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=None, help="comma-separated; default: every registered method")
    parser.add_argument("--json", default="unlearning_methods.json", help="results accumulate here")
    parser.add_argument("--again", action="store_true", help="rerun methods already in --json")
    parser.add_argument("--at", type=int, default=None, help="the short form (relearning_at): train this many steps, then only the relearning check and the control")
    parser.add_argument("--also", default="", help="comma-separated result files of other invocations, read for the table")
    args = parser.parse_args()

    from kernel_lifecycle.unlearning import METHODS, check_method

    methods = [check_method(m) for m in args.methods.split(",")] if args.methods else list(METHODS)
    out = Path(args.json)
    rows = {r["method"]: r for r in json.loads(out.read_text())} if out.exists() else {}
    others = {r["method"]: r for f in filter(None, args.also.split(",")) for r in json.loads(Path(f).read_text())}
    parent, loaded = demo_parent()
    print(f"world: {KERNEL} v{parent} (the quickstart's upskill), policy {loaded.sha256[:12]}", flush=True)
    for name in methods:
        if name in rows and not args.again:
            print(f"{name}: kept from {out}", flush=True)
            continue
        rows[name] = run_method(name, parent, loaded) if args.at is None else relearning_at(name, args.at, parent, loaded)
        if args.at is not None:
            out.write_text(json.dumps(list(rows.values()), indent=2))
            print(json.dumps(rows[name]), flush=True)
            continue
        out.write_text(json.dumps(list(rows.values()), indent=2))
        print(f"{name}: {rows[name]['seconds']} s, " + (rows[name].get("refused") or rows[name]["gate"]["status"]), flush=True)
    print()
    if args.at is None:
        every = {**others, **rows}
        print(table([every[m] for m in METHODS if m in every]))


if __name__ == "__main__":
    main()
