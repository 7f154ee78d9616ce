"""Plots are written, non-trivial, and drawn from the numbers given (not a blank canvas)."""

from __future__ import annotations

from pathlib import Path

from kernel_lifecycle.boundary.metrics import rate_interval
from kernel_lifecycle.boundary.plot import plot_curves, plot_inventory
from kernel_lifecycle.boundary.report import SkillMetrics


def _m(skill: str, passed: int, n: int = 40, metric: str = "pass_rate") -> SkillMetrics:
    value, low, high = rate_interval([(1, int(i < passed)) for i in range(n)])
    return SkillMetrics(
        skill=skill, scorer="python_tests", metric=metric, split="dev", n_problems=n, n_samples=1, k=1,
        value=value, ci_low=low, ci_high=high, mean_entropy=0.4, truncation_rate=0.0,
    )


def _history() -> list:
    cobol = [30, 22, 9, 2, 0, 0]
    return [
        (step, {"python": _m("python", 30 - i % 2), "sql": _m("sql", 26 + i % 3), "cobol": _m("cobol", c, metric="compile_rate")})
        for i, (step, c) in enumerate(zip(range(0, 60, 10), cobol))
    ]


def _ink(path: Path) -> float:
    """Share of pixels that are not white: a blank or axis-only figure is near 0."""
    import matplotlib.image as mpimg

    pixels = mpimg.imread(path)[..., :3]
    return float((pixels.mean(axis=-1) < 0.95).mean())


def test_curves_png_is_written_and_drawn(tmp_path: Path) -> None:
    thresholds = {"python": ("retained", 0.6), "sql": ("retained", 0.5), "cobol": ("retired", 0.05)}
    full = plot_curves(_history(), retired=["cobol"], retained=["python", "sql"], thresholds=thresholds, chosen_step=40, path=tmp_path / "a" / "curves.png")
    empty = plot_curves([], retired=["cobol"], retained=["python"], thresholds={}, path=tmp_path / "empty.png")
    assert full.stat().st_size > 20_000
    assert _ink(full) > _ink(empty) + 0.01  # the curves, bands and lines are really drawn


def test_inventory_png_for_two_versions(tmp_path: Path) -> None:
    last = _history()[-1][1]
    first = _history()[0][1]
    path = plot_inventory({"1": first, "2": last}, path=tmp_path / "inv.png", title="demo: skills per version")
    assert path.stat().st_size > 10_000 and _ink(path) > 0.02
