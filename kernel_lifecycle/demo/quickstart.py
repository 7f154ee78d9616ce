"""The quickstart: the whole lifecycle of the demo kernel on the embedded defaults.

1. the lifecycle DB is migrated and the demo policy applied;
2. the demo base model is built (or reused from its content-addressed cache), and beside it the
   reference the cobol downskill is judged against: the same recipe without cobol's data;
3. ``python-kernel`` v1 is distilled from it on python + cobol, gated, approved, promoted;
4. the policy's upskill teaches SQL (v2), gated, approved, promoted;
5. the policy's sunset deprecation of cobol runs *now* (v3) and is gated: promoted when its
   gate passes, else it stays a candidate with the gate's reasons printed and v2 stays champion;
6. the skill inventory of every version is printed side by side, with where the plots and the
   MLflow store are and the command that opens the UI.

Re-running reuses what exists: a step whose version is already registered is skipped.

``run(base="smollm2")`` is the same lifecycle on a real pretrained model (``REAL_WORLDS``): the
base measured on every skill first, v1 = the base plus a LoRA adapter for python and cobol
(``adapt``), then the same upskill, downskill, gates and promotions under
``policies/smollm2-kernel.yaml``, and the champion served back through plain ``mlflow.pyfunc``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kernel_lifecycle import promotion
from kernel_lifecycle.boundary.inventory import inventory_report, inventory_table
from kernel_lifecycle.boundary.skills import skills_named
from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope, upgrade
from kernel_lifecycle.demo.base_builder import build_demo_base
from kernel_lifecycle.display import SILENT, Display
from kernel_lifecycle.errors import ConfigurationError, RefusedError
from kernel_lifecycle.jobs.config import harness_of, policy_skills
from kernel_lifecycle.jobs.payloads import submit_job
from kernel_lifecycle.jobs.recipes import from_policy
from kernel_lifecycle.models.bases import resolve_base
from kernel_lifecycle.models.loading import load_base
from kernel_lifecycle.pipeline import run_plan
from kernel_lifecycle.policy.loader import load_policy
from kernel_lifecycle.policy_apply import apply_policy
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.resources import bundled
from kernel_lifecycle.settings import get_settings

KERNEL = "python-kernel"
SERVE_PROMPT = 'def add(a, b):\n    """Return the sum of a and b."""\n'


@dataclass(frozen=True)
class World:
    """One quickstart: the kernel, its policy file, the base its first version comes from, and how."""

    kernel: str
    policy: str  # a file in the bundled policies/
    base: str  # a base spec
    first: str  # the first version's job kind: distill (a smaller student) or adapt (the base + a LoRA)
    skills: tuple[str, ...] = ("python", "cobol")  # the first version's data


DEMO_WORLD = World(kernel=KERNEL, policy="python-kernel.yaml", base="demo", first="distill")
REAL_WORLDS = {"smollm2": World(kernel="smol-python", policy="smollm2-kernel.yaml", base="smollm2", first="adapt")}


@dataclass
class QuickstartResult:
    versions: dict[str, str] = field(default_factory=dict)  # step -> version
    promoted: dict[str, bool] = field(default_factory=dict)  # step -> its version became champion
    seconds: float = 0.0
    inventory: dict[str, dict[str, dict]] = field(default_factory=dict)
    served: str | None = None  # the champion's answer through mlflow.pyfunc (a real world)


def _version_by_kind(kernel: str, kind: str) -> str | None:
    if not registry.kernel_exists(kernel):
        return None
    for kv in reversed(registry.list_versions(kernel)):
        if kv.tags.get("kernel.job_kind") == kind:
            return kv.version
    return None


def _gate_and_promote(kernel: str, version: str, approver: str, step: str, display: Display, *, refusal_ends: bool = True) -> bool:
    """Gate, approve and promote; a refused gate ends the quickstart (``refusal_ends``), or is
    reported and the champion stays where it is. Returns whether the version is champion."""
    with session_scope() as session:
        if repo.get_alias(session, kernel=kernel, alias="champion") == version:
            display.line(f"  v{version} is champion already")
            return True
    gate = promotion.run_gate(kernel, version)
    failures = [r["message"] for r in gate["reasons"] if not r["passed"]]
    display.line(f"  gate v{version} vs champion {gate['champion'] or '(none)'}: [bold]{gate['status']}[/bold]")
    for message in failures:
        display.line(f"    [red]x[/red] {message}")
    if gate["status"] != "passed":
        if refusal_ends:
            raise RefusedError(f"quickstart: the gate refused v{version} after {step}; see the reasons above")
        display.line(
            f"  [bold]v{version} stays a candidate: its gate refused it[/bold] (the reasons above); the champion "
            f"stays v{gate['champion']}. This is the gate doing its job: `kernel-lifecycle gate {kernel} {version}` shows it again."
        )
        return False
    promotion.approve(kernel, version, approver=approver, note=f"quickstart: {step}")
    promotion.promote(kernel, version, actor=approver, reason=f"quickstart: {step}")
    display.line(f"  v{version} promoted to champion (approved and promoted by {approver})")
    return True


def _retrain_reference(policy, display: Display) -> None:  # noqa: ANN001 - a Policy
    """The demo base's recipe without the skill the policy retires: the model the downskill's
    relearning is judged against (every ancestor of v3 and the base itself learned cobol)."""
    plan = policy.plans.downskill
    if plan is None:
        return
    ref = build_demo_base(without=plan.skill, display=display)
    how = "shipped" if ref.path.parent.name == "demo" else ("reused from cache" if ref.cached else "built")
    display.line(
        f"  reference without {plan.skill} ({how}; its build took {ref.seconds:.0f} s): {ref.path} (sha256 {ref.sha256[:12]}): "
        + ", ".join(f"{k} {v:.2f}" for k, v in ref.metrics.items())
    )


def _measure_base(world: World, policy, display: Display) -> None:  # noqa: ANN001 - a Policy
    """Every skill of the policy on the base itself, under the gate's harness: where the lifecycle starts."""
    model, tokenizer = load_base(world.base)
    harness = harness_of(policy)
    report = inventory_report(model, tokenizer, kernel=world.kernel, version=None, harness=harness,
                              skills=skills_named(policy_skills(policy)))
    def cells(m) -> list[str]:  # noqa: ANN001 - SkillMetrics, or None when a split was not measured
        if m is None:
            return ["-"] * 3
        return [f"{100 * m.value:.1f}% [{100 * m.ci_low:.1f}, {100 * m.ci_high:.1f}]", f"{100 * (m.ci_high - m.ci_low):.1f} pts",
                f"{100 * m.truncation_rate:.0f}%"]

    rows = [[name, m.metric, *cells(m), *cells(report.fresh.get(name)), str(m.n_problems)] for name, m in sorted(report.skills.items())]
    display.table(
        f"{world.base} before any job ({report.gate_split} split and fresh families, first {harness.max_problems or 'all'} problems, greedy)",
        ["skill", "metric", f"{report.gate_split}: value [95% interval]", "width", "truncated",
         "fresh: value [95% interval]", "width", "truncated", "problems"], rows)
    del model


def _serve(world: World, display: Display) -> str:
    """The champion through plain MLflow, as a serving team would load it."""
    import mlflow.pyfunc

    mlflow.set_tracking_uri(get_settings().tracking_uri)
    served = mlflow.pyfunc.load_model(f"models:/{world.kernel}@champion")
    answer = served.predict([SERVE_PROMPT], params={"max_new_tokens": 96})[0]
    display.line(f"  mlflow.pyfunc.load_model('models:/{world.kernel}@champion').predict([...]) answered:")
    for line in answer.splitlines() or [""]:
        display.line(f"    {line}")
    return answer


def run(display: Display = SILENT, *, base: str | None = None, seed: int | None = None) -> QuickstartResult:
    """The demo world (``base=None``), or the real one of a named base (``REAL_WORLDS``);
    ``seed``: every job's training seed (None: the configs' default)."""
    if base is not None and base not in REAL_WORLDS:
        raise ConfigurationError(f"no quickstart for base {base!r}; bases: {', '.join(REAL_WORLDS)} (or none: the demo)")
    world = REAL_WORLDS[base] if base is not None else DEMO_WORLD
    return run_world(world, display, seed=seed)


def run_world(world: World, display: Display = SILENT, *, seed: int | None = None) -> QuickstartResult:
    started = time.monotonic()
    result = QuickstartResult()
    settings = get_settings()
    settings.ensure_home()
    upgrade()
    kernel = world.kernel
    loaded = load_policy(bundled("policies") / world.policy)
    apply_policy(loaded, actor="quickstart")
    approver = loaded.policy.approvals.approvers[0]
    if world.first == "distill":
        display.rule("1. demo base model")
        built = build_demo_base(display=display)
        display.line(f"  {built.path} (sha256 {built.sha256[:12]}): " + ", ".join(f"{k} {v:.2f}" for k, v in built.metrics.items()))
        _retrain_reference(loaded.policy, display)
    else:
        resolved = resolve_base(world.base)
        display.rule(f"1. the base {world.base}, measured before any job")
        display.line(f"  {resolved.source or resolved.path} -> {resolved.path} (weights sha256 {resolved.sha256[:12]})")
        _measure_base(world, loaded.policy, display)

    def first_version() -> str:
        extra = {"teacher": world.base} if world.first == "distill" else {"base": world.base}
        config = from_policy(world.first, loaded.policy, loaded.sha256, skills=list(world.skills), seed=seed, **extra)
        return submit_job(config, actor="quickstart", display=display).version  # KL_EXECUTOR: here or on Ray

    steps = [
        (f"2. {world.first} {kernel} v1 ({' + '.join(world.skills)})", world.first, first_version),
        ("3. upskill sql (the policy's upskill plan)", "upskill",
         lambda: run_plan(kernel, "upskill", trigger_id="manual-upskill", actor="quickstart", display=display, seed=seed)["version"]),
        ("4. the scheduled deprecation of cobol (its sunset trigger), run now", "downskill",
         lambda: run_plan(kernel, "downskill", trigger_id="cobol-sunset", actor="quickstart", display=display, seed=seed)["version"]),
    ]
    for title, kind, make in steps:
        display.rule(f"{title}")
        version = _version_by_kind(kernel, kind)
        if version is None:
            version = make()
        else:
            display.line(f"  reusing v{version}")
        result.versions[kind] = version
        # the deprecation's candidate may be refused (and say why); v1 and v2 are what it builds on
        result.promoted[kind] = _gate_and_promote(kernel, version, approver, kind, display, refusal_ends=kind != "downskill")
    v1, v2, v3 = result.versions[world.first], result.versions["upskill"], result.versions["downskill"]

    display.rule("5. skill inventory of every version")
    result.inventory = inventory_table(kernel, [v1, v2, v3], display=display)
    if world.first == "adapt":
        display.rule("6. the champion, served through mlflow.pyfunc")
        result.served = _serve(world, display)
    result.seconds = time.monotonic() - started
    display.rule("where things are")
    display.line(f"  MLflow store:     {settings.tracking_uri}")
    display.line(f"  artifacts/plots:  {settings.artifact_root} (boundary/curves.png of each job's run)")
    display.line(f"  lifecycle DB:     {settings.db_url}")
    display.line("  open the UI:      kernel-lifecycle ui")
    display.line(f"  lineage:          kernel-lifecycle kernels lineage {kernel}@{v3}")
    champion = v3 if result.promoted.get("downskill") else v2
    display.line(f"  champion:         v{champion}" + ("" if champion == v3 else f" (v{v3} was refused by its gate: `kernel-lifecycle gate {kernel} {v3}`)"))
    display.line(f"  done in {result.seconds:.0f} s")
    return result
