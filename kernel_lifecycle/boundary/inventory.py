"""Skill inventory: every known skill measured on a kernel version; a diff between two versions.

``inventory_report`` is the library function (a model and tokenizer in, a full boundary report
out, checks included); ``inventory_of`` resolves a registry reference first. A diff compares
two reports only under the same harness (scorer parity) and marks a change significant when
the paired bootstrap interval of the per-problem difference excludes zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from kernel_lifecycle.boundary.checks import require_parity
from kernel_lifecycle.boundary.evaluate import evaluate_kernel, measure_skills
from kernel_lifecycle.boundary.metrics import describe_rate, paired_difference, problem_scores
from kernel_lifecycle.boundary.plot import plot_inventory
from kernel_lifecycle.boundary.report import BoundaryReport, HarnessConfig, SkillMetrics
from kernel_lifecycle.boundary.skills import Skill, demo_skills, skills_named
from kernel_lifecycle.boundary.tracking import load_version_report, log_report
from kernel_lifecycle.display import SILENT, Display, ProgressLike
from kernel_lifecycle.errors import NotFoundError
from kernel_lifecycle.models.loading import LoadedKernel, load_kernel
from kernel_lifecycle.registry.client import KernelVersion, fetch_bundle, get_version, resolve
from kernel_lifecycle.settings import get_settings

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

INVENTORY_COLUMNS = ["skill", "metric", "gate split", "95% interval", "fresh", "gap (gate - fresh)", "entropy", "truncated"]
FAMILY_COLUMNS = ["skill", "split", "family", "problems", "value"]
DIFF_COLUMNS = ["skill", "metric", "before", "after", "change", "95% interval of change", "sig."]


def _load(kv: KernelVersion) -> LoadedKernel:
    return load_kernel(fetch_bundle(kv))


def inventory_harness(*, split: str = "dev", max_problems: int | None = 50, max_new_tokens: int = 256) -> HarnessConfig:
    """The harness of an inventory: greedy, one sample, pass@1 (scorers and digests filled in later)."""
    return HarnessConfig(max_new_tokens=max_new_tokens, split=split, max_problems=max_problems)  # type: ignore[arg-type]


def inventory_report(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, kernel: str, version: str | None, harness: HarnessConfig,
    skills: Mapping[str, Skill] | None = None, progress: ProgressLike | None = None,
) -> BoundaryReport:
    """Every known skill (``demo_skills()`` unless given) under ``harness``, all checks run."""
    skills = dict(skills if skills is not None else demo_skills())
    if not skills:
        raise NotFoundError("no skills to measure: KL_SKILLS_DIR names no folder with skill.json files")
    # (evaluate_kernel records the scorers' versions and the probe digests itself)
    return evaluate_kernel(
        model, tokenizer, kernel=kernel, version=version, skills=skills, harness=harness, progress=progress
    )


def inventory_of(ref: str, harness: HarnessConfig, *, skills: Mapping[str, Skill] | None = None, progress: ProgressLike | None = None) -> BoundaryReport:
    """resolve -> fetch_bundle -> load_kernel -> evaluate every skill."""
    kv = resolve(ref)
    loaded = _load(kv)
    return inventory_report(
        loaded.model, loaded.tokenizer, kernel=kv.name, version=kv.version, harness=harness, skills=skills, progress=progress
    )


def evaluate_version(kv: KernelVersion, harness: HarnessConfig) -> BoundaryReport:
    """Re-measure a registered version under ``harness`` (the skills its probe digests name).

    Used by the gate when the champion was measured under another harness (scorer parity).
    """
    names = sorted({key.split("/")[0] for key in harness.probe_digests}) or sorted(demo_skills())
    loaded = _load(kv)
    return inventory_report(
        loaded.model, loaded.tokenizer, kernel=kv.name, version=kv.version, harness=harness,
        skills=skills_named(names),
    )


def remeasure_version(ref: str, *, log: bool = True) -> tuple[BoundaryReport, BoundaryReport]:
    """Re-measure a registered version on today's split files under the harness it was registered
    with: (its registered report, the new one). ``log``: the new report goes on the version's run
    under ``remeasure/`` (the registered report is never replaced: it is what its gate decided on)."""
    kv = resolve(ref)
    registered = load_version_report(kv)
    report = evaluate_version(kv, registered.harness)
    if log and kv.run_id:
        log_report(report, run_id=kv.run_id, prefix="remeasure.", plot=False)
    return registered, report


def changed_splits(before: BoundaryReport, after: BoundaryReport) -> list[list[str]]:
    """``<skill>/<split>``, digest before, digest after: the probe files that changed between two reports."""
    old, new = before.split_digests or before.harness.probe_digests, after.split_digests or after.harness.probe_digests
    return [[key, old.get(key, "-")[:12], new.get(key, "-")[:12]] for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key)]


def measure_version(
    kv: KernelVersion, skills: Mapping[str, Skill], *, split: str = "dev", max_problems: int | None = 50, max_new_tokens: int = 160
) -> dict[str, SkillMetrics]:
    """``skills`` on one version, greedy, first ``max_problems`` probes, no checks (cheap)."""
    loaded = _load(kv)
    return measure_skills(
        loaded.model, loaded.tokenizer, skills, split=split, max_problems=max_problems, max_new_tokens=max_new_tokens
    )


def _interval(m: SkillMetrics) -> str:
    return f"[{100 * m.ci_low:.1f}%, {100 * m.ci_high:.1f}%]"


def _value(m: SkillMetrics) -> str:
    return describe_rate(m.value, m.ci_high, m.n_problems * m.n_samples)


def _gap(report: BoundaryReport, name: str) -> str:
    gap = report.gaps.get(name)
    return "-" if gap is None else f"{100 * gap.gap:+.1f} pts [{100 * gap.low:+.1f}, {100 * gap.high:+.1f}]"


def inventory_rows(report: BoundaryReport) -> list[list[str]]:
    """One row per skill: the gate-split value (a zero as 'below X%') and interval, the fresh
    value, the generalization gap with its interval, entropy, truncation."""
    return [
        [
            name, m.metric, _value(m), _interval(m),
            _value(report.fresh[name]) if name in report.fresh else "-", _gap(report, name),
            f"{m.mean_entropy:.2f}", f"{100 * m.truncation_rate:.0f}%",
        ]
        for name, m in sorted(report.skills.items())
    ]


def family_rows(report: BoundaryReport) -> list[list[str]]:
    """The bidirectional boundary map, family by family: per skill and measured split, each
    family's problems and value (pass@k mean over its problems)."""
    rows = []
    for name in sorted(report.skills):
        for split, metrics in ((report.gate_split, report.skills[name]), ("fresh", report.fresh.get(name))):
            if metrics is None or (split == "fresh" and metrics is report.skills[name]):
                continue
            families: dict[str, list[float]] = {}
            scores = problem_scores(metrics)
            for p in metrics.problems:
                families.setdefault(p.family or "(unknown)", []).append(scores[p.task_id])
            for family, scores in sorted(families.items()):
                rows.append([name, split, family, str(len(scores)), f"{100 * sum(scores) / len(scores):.1f}%"])
    return rows


def change(a: SkillMetrics, b: SkillMetrics, *, seed: int = 0) -> tuple[float, float, float, bool]:
    """(b - a, low, high, significant).

    Paired by task id when both measured the same problems (per-problem pass@k differences,
    bootstrap over problems); otherwise the two intervals must not overlap.
    """
    left, right = problem_scores(a), problem_scores(b)
    if left and left.keys() == right.keys() and a.k == b.k:
        ids = sorted(left)
        diff, low, high = paired_difference([left[t] for t in ids], [right[t] for t in ids], seed=seed)
        return diff, low, high, low > 0 or high < 0
    return b.value - a.value, float("nan"), float("nan"), a.ci_high < b.ci_low or b.ci_high < a.ci_low


def diff_rows(before: BoundaryReport, after: BoundaryReport) -> list[list[str]]:
    """Per-skill change between two reports of the same harness (refused otherwise)."""
    require_parity(before, after)
    rows = []
    for name in sorted(set(before.skills) | set(after.skills)):
        a, b = before.skills.get(name), after.skills.get(name)
        if a is None or b is None:
            rows.append([name, (a or b).metric, "-" if a is None else _value(a), "-" if b is None else _value(b), "-", "-", ""])  # type: ignore[union-attr]
            continue
        diff, low, high, significant = change(a, b)
        interval = "-" if low != low else f"[{100 * low:+.1f}, {100 * high:+.1f}] pts"  # NaN: unpaired
        rows.append([name, a.metric, _value(a), _value(b), f"{100 * diff:+.1f} pts", interval, "*" if significant else ""])
    return rows


def report_summary(report: BoundaryReport) -> dict:
    """JSON for ``--json``: per-skill numbers (no per-problem lists) and the checks."""
    return {
        "kernel": report.kernel,
        "version": report.version,
        "harness_hash": report.harness_hash,
        "harness": report.harness.model_dump(mode="json"),
        "selection_split": report.selection_split,
        "gate_split": report.gate_split,
        "skills": {s: m.model_dump(mode="json", exclude={"problems"}) for s, m in report.skills.items()},
        "fresh": {s: m.model_dump(mode="json", exclude={"problems"}) for s, m in report.fresh.items()},
        "gaps": {s: g.model_dump(mode="json") for s, g in report.gaps.items()},
        "forgetting": {s: f.model_dump(mode="json") for s, f in report.forgetting.items()},
        "checks": [c.model_dump(mode="json") for c in report.checks],
    }


def inventory_table(kernel: str, versions: Sequence[str], *, display: Display = SILENT) -> dict:
    """Every version's registered boundary report side by side (gate split, fresh, gap), shown on
    ``display``, and the inventory plot: the numbers the gates decided on, not a second, cheaper
    measurement. Returns each version's ``report_summary``."""
    reports = {v: load_version_report(get_version(kernel, v)) for v in versions}
    rows = []
    for skill in sorted({s for r in reports.values() for s in r.skills}):
        row = [skill]
        for report in reports.values():
            m, f = report.skills.get(skill), report.fresh.get(skill)
            row.append("-" if m is None else f"{_value(m)} {_interval(m)}")
            row.append("-" if f is None else f"{_value(f)}  gap {_gap(report, skill)}")
        rows.append(row)
    splits = sorted({r.gate_split for r in reports.values()})
    display.table(
        f"skill inventory of {kernel}: each version's registered report ({'/'.join(splits)} split, all probes, greedy)",
        ["skill", *[c for v in versions for c in (f"v{v} {reports[v].gate_split}", f"v{v} fresh")]],
        rows,
    )
    inventory = {v: r.skills for v, r in reports.items()}
    path = plot_inventory(inventory, path=get_settings().home_dir / "plots" / f"{kernel}-inventory.png", title=f"{kernel}: skills per version")
    display.line(f"  inventory plot: {path}")
    return {v: report_summary(r) for v, r in reports.items()}
