"""Plots (matplotlib, Agg): the two curves of a job, and a skill inventory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kernel_lifecycle.boundary.report import CheckResult, SkillMetrics

if TYPE_CHECKING:
    from types import ModuleType

    from matplotlib.figure import Figure

History = Sequence[tuple[int, Mapping[str, SkillMetrics]]]


def _pyplot() -> ModuleType:  # matplotlib.pyplot, Agg backend; imported on the first plot (it is slow)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    _pyplot().close(fig)
    return path


def plot_curves(
    history: History,
    *,
    retired: Sequence[str],
    retained: Sequence[str],
    thresholds: Mapping[str, tuple[str, float]],
    chosen_step: int | None = None,
    path: Path,
    title: str | None = None,
) -> Path:
    """Retained skills (solid) should stay high, retired skills (dashed) fall to the floor.

    Bands are each point's interval; dotted lines are floors and ceilings; the vertical line
    marks the boundary checkpoint the job chose.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    steps = [step for step, _ in history]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate([*retained, *retired]):
        color = colors[i % len(colors)]
        points = [(s, m[name]) for s, m in history if name in m]
        if not points:
            continue
        xs = [s for s, _ in points]
        ax.plot(
            xs, [m.value for _, m in points], marker="o", color=color, linestyle="--" if name in retired else "-",
            label=f"{name} ({'retired' if name in retired else 'retained'}, {points[0][1].metric})",
        )
        ax.fill_between(xs, [m.ci_low for _, m in points], [m.ci_high for _, m in points], color=color, alpha=0.15)
        if name in thresholds:
            role, value = thresholds[name]
            ax.axhline(value, color=color, linestyle=":", linewidth=1)
            # labelled at the left end, where the curves start and no legend sits
            ax.annotate(
                f"{name} {'ceiling' if role == 'retired' else 'floor'} {value:.2f}", (xs[0], value),
                xytext=(2, 2), textcoords="offset points", fontsize=7, color=color,
            )
    if chosen_step is not None:
        ax.axvline(chosen_step, color="black", linewidth=1)
        ax.annotate(f"boundary (step {chosen_step})", (chosen_step, 1.02), xytext=(-4, 0), textcoords="offset points", fontsize=8, ha="right")
    ax.set_xlabel("training step")
    ax.set_ylabel("rate (dev subset)")
    ax.set_ylim(-0.02, 1.08)
    if steps:
        ax.set_xlim(min(steps) - 1, max(steps) + 1)
    ax.set_title(title or "boundary: retained skills stay high, retired skills fall")
    if ax.get_legend_handles_labels()[0]:
        # outside the axes: inside it would hide the thresholds or the curves it explains
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_inventory(inventory: Mapping[str, Mapping[str, SkillMetrics]], *, path: Path, title: str) -> Path:
    """Grouped bars: one group per skill, one bar per version, with interval whiskers.

    ``inventory`` maps a version label (``"3"`` is drawn as ``v3``) to that version's skills.
    """
    plt = _pyplot()
    versions = list(inventory)
    skills = sorted({s for metrics in inventory.values() for s in metrics})
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    width = 0.8 / max(len(versions), 1)
    for i, version in enumerate(versions):
        xs, ys, lo, hi = [], [], [], []
        for j, skill in enumerate(skills):
            m = inventory[version].get(skill)
            if m is None:
                continue
            xs.append(j + i * width)
            ys.append(m.value)
            lo.append(m.value - m.ci_low)
            hi.append(m.ci_high - m.value)
        label = f"v{version}" if str(version).isdigit() else str(version)
        # a zero bar still shows its whisker: the exact upper bound, not a claim of zero
        ax.bar(xs, ys, width=width, yerr=[lo, hi], capsize=3, label=label)
        for x, y, up in zip(xs, ys, hi):
            if y == 0.0:
                ax.annotate(f"< {100 * up:.1f}%", (x, up), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=7)
    ax.set_xticks([j + width * (len(versions) - 1) / 2 for j in range(len(skills))], skills)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("pass / compile rate")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def plot_relearning(check: CheckResult, *, skill: str, path: Path) -> Path:
    """The relearning check's curves on one plot: the candidate's and its reference's (when it
    has one), the skill's start before the downskill and half of it, the area verdict in the title."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    n = check.numbers
    ax.plot(range(1, len(check.curve) + 1), check.curve, marker="o", label=f"candidate (steps to half the start: {_steps(n.get('steps_to_recover'))})")
    if check.reference_curve and check.reference is not None:
        ax.plot(range(1, len(check.reference_curve) + 1), check.reference_curve, marker="s", linestyle="--",
                label=f"reference: {check.reference.name} ({check.reference.kind}; steps to half: {_steps(n.get('reference_steps_to_recover'))})")
    if "start" in n:
        ax.axhline(n["start"], color="gray", linestyle=":", linewidth=1, label=f"start before the downskill {n['start']:.3f}")
        ax.axhline(n["half_start"], color="gray", linestyle="-.", linewidth=1, label=f"half the start {n['half_start']:.3f}")
    if "area_excess_upper" in n:
        verdict = (f"area excess {n['area_excess']:+.3f}, upper bound {n['area_excess_upper']:+.3f} vs tolerance "
                   f"{n['tolerance']:.2f}: {'passed' if check.passed else 'FAILED'}")
    else:
        verdict = f"no reference: half-start rule (weaker): {'passed' if check.passed else 'FAILED'}"
    ax.set_title(f"relearning {skill}: {verdict}", fontsize=9)
    ax.set_xlabel("relearning step")
    ax.set_ylabel(f"{skill} rate (gate split subset)")
    ax.set_ylim(-0.02, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def _steps(value: float | None) -> str:
    return "never" if value is None or value < 0 else str(int(value))
