"""The quickstart: the whole lifecycle of the demo kernel on the embedded defaults.

1. the lifecycle DB is migrated and the demo policy applied;
2. the demo base model is built (or reused from its content-addressed cache);
3. ``python-kernel`` v1 is distilled from it on python + cobol, gated, approved, promoted;
4. the policy's upskill teaches SQL (v2), gated, approved, promoted;
5. the policy's sunset deprecation of cobol runs *now* (v3) and is gated: promoted when its
   gate passes, else it stays a candidate with the gate's reasons printed and v2 stays champion;
6. the skill inventory of every version is printed side by side, with where the plots and the
   MLflow store are and the command that opens the UI.

Re-running reuses what exists: a step whose version is already registered is skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kernel_lifecycle import promotion
from kernel_lifecycle.boundary.inventory import inventory_table
from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope, upgrade
from kernel_lifecycle.demo.base_builder import build_demo_base
from kernel_lifecycle.display import SILENT, Display
from kernel_lifecycle.errors import RefusedError
from kernel_lifecycle.jobs.payloads import submit_job
from kernel_lifecycle.jobs.recipes import from_policy
from kernel_lifecycle.pipeline import run_plan
from kernel_lifecycle.policy.loader import load_policy
from kernel_lifecycle.policy_apply import apply_policy
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.resources import demo_policy
from kernel_lifecycle.settings import get_settings

KERNEL = "python-kernel"
DISTILL_SKILLS = ["python", "cobol"]


@dataclass
class QuickstartResult:
    versions: dict[str, str] = field(default_factory=dict)  # step -> version
    promoted: dict[str, bool] = field(default_factory=dict)  # step -> its version became champion
    seconds: float = 0.0
    inventory: dict[str, dict[str, dict]] = field(default_factory=dict)


def _version_by_kind(kind: str) -> str | None:
    if not registry.kernel_exists(KERNEL):
        return None
    for kv in reversed(registry.list_versions(KERNEL)):
        if kv.tags.get("kernel.job_kind") == kind:
            return kv.version
    return None


def _gate_and_promote(version: str, approver: str, step: str, display: Display, *, refusal_ends: bool = True) -> bool:
    """Gate, approve and promote; a refused gate ends the quickstart (``refusal_ends``), or is
    reported and the champion stays where it is. Returns whether the version is champion."""
    with session_scope() as session:
        if repo.get_alias(session, kernel=KERNEL, alias="champion") == version:
            display.line(f"  v{version} is champion already")
            return True
    gate = promotion.run_gate(KERNEL, version)
    failures = [r["message"] for r in gate["reasons"] if not r["passed"]]
    display.line(f"  gate v{version} vs champion {gate['champion'] or '(none)'}: [bold]{gate['status']}[/bold]")
    for message in failures:
        display.line(f"    [red]x[/red] {message}")
    if gate["status"] != "passed":
        if refusal_ends:
            raise RefusedError(f"quickstart: the gate refused v{version} after {step}; see the reasons above")
        display.line(
            f"  [bold]v{version} stays a candidate: its gate refused it[/bold] (the reasons above); the champion "
            f"stays v{gate['champion']}. This is the gate doing its job: `kernel-lifecycle gate {KERNEL} {version}` shows it again."
        )
        return False
    promotion.approve(KERNEL, version, approver=approver, note=f"quickstart: {step}")
    promotion.promote(KERNEL, version, actor=approver, reason=f"quickstart: {step}")
    display.line(f"  v{version} promoted to champion (approved and promoted by {approver})")
    return True


def run(display: Display = SILENT) -> QuickstartResult:
    started = time.monotonic()
    result = QuickstartResult()
    settings = get_settings()
    settings.ensure_home()
    upgrade()
    loaded = load_policy(demo_policy())
    apply_policy(loaded, actor="quickstart")
    approver = loaded.policy.approvals.approvers[0]
    display.rule("1. demo base model")
    base = build_demo_base(display=display)
    display.line(f"  {base.path} (sha256 {base.sha256[:12]}): " + ", ".join(f"{k} {v:.2f}" for k, v in base.metrics.items()))

    def distill_v1() -> str:
        config = from_policy("distill", loaded.policy, loaded.sha256, skills=DISTILL_SKILLS, teacher="demo")
        return submit_job(config, actor="quickstart", display=display).version  # KL_EXECUTOR: here or on Ray

    steps = [
        ("2. distill python-kernel v1", "distill", distill_v1),
        ("3. upskill sql (the policy's upskill plan)", "upskill",
         lambda: run_plan(KERNEL, "upskill", trigger_id="manual-upskill", actor="quickstart", display=display)["version"]),
        ("4. the scheduled deprecation of cobol (its sunset trigger), run now", "downskill",
         lambda: run_plan(KERNEL, "downskill", trigger_id="cobol-sunset", actor="quickstart", display=display)["version"]),
    ]
    for title, kind, make in steps:
        display.rule(f"{title}")
        version = _version_by_kind(kind)
        if version is None:
            version = make()
        else:
            display.line(f"  reusing v{version}")
        result.versions[kind] = version
        # the deprecation's candidate may be refused (and say why); v1 and v2 are what it builds on
        result.promoted[kind] = _gate_and_promote(version, approver, kind, display, refusal_ends=kind != "downskill")
    v1, v2, v3 = result.versions["distill"], result.versions["upskill"], result.versions["downskill"]

    display.rule("5. skill inventory of every version")
    result.inventory = inventory_table(KERNEL, [v1, v2, v3], display=display)
    result.seconds = time.monotonic() - started
    display.rule("where things are")
    display.line(f"  MLflow store:     {settings.tracking_uri}")
    display.line(f"  artifacts/plots:  {settings.artifact_root} (boundary/curves.png of each job's run)")
    display.line(f"  lifecycle DB:     {settings.db_url}")
    display.line("  open the UI:      kernel-lifecycle ui")
    display.line(f"  lineage:          kernel-lifecycle kernels lineage {KERNEL}@{v3}")
    champion = v3 if result.promoted.get("downskill") else v2
    display.line(f"  champion:         v{champion}" + ("" if champion == v3 else f" (v{v3} was refused by its gate: `kernel-lifecycle gate {KERNEL} {v3}`)"))
    display.line(f"  done in {result.seconds:.0f} s")
    return result
