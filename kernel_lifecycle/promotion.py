"""Gate runs, approvals and promotion: where measurements become decisions.

- ``run_gate`` compares a candidate's boundary report with the current champion's on the same
  harness config (re-evaluating the champion when the configs differ), stores the decision in
  the DB, and writes it onto the MLflow version (``gate.status``, ``gate.report`` tags and the
  description) so the UI shows why.
- ``promote`` moves ``champion`` only if the latest gate passed against the *current* champion
  and the policy's approvals are met; the alias move and its audit row commit together, and a
  compare-and-set on the champion makes concurrent promotions have one winner. Every attempt,
  refused ones included, leaves an audit row. Two-person rule: the submitter of the job that made
  the version cannot be its only approval unless the policy allows it.
"""

from __future__ import annotations

import json

from kernel_lifecycle import aliases
from kernel_lifecycle.boundary.inventory import evaluate_version
from kernel_lifecycle.boundary.report import BoundaryReport
from kernel_lifecycle.boundary.skills import skill_sources
from kernel_lifecycle.boundary.tracking import PROBES_TABLE, artifact_link, load_version_report, log_gate_decision
from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.errors import RefusedError
from kernel_lifecycle.gates import GateDecision, gate_tags, gate_version, needs_reevaluation
from kernel_lifecycle.policy.active import ActivePolicy, active_policy
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.registry.bundle import read_manifest

# The MLflow description holds the latest gate verdict, then the job's own description.
GATE_SEPARATOR = "\n\n---\n\n"


def run_gate(kernel: str, version: str, *, reevaluate=None) -> dict:  # noqa: ANN001
    """Gate ``kernel@version`` against the current champion; returns the stored decision.

    Read (the active policy, both reports, the candidate's manifest), decide (``gates``, pure),
    write (``record_gate``: the DB row, then the MLflow tags and description).
    ``reevaluate(kv, harness) -> BoundaryReport`` re-measures the champion under the
    candidate's harness config when the two differ (scorer parity); the default loads the
    champion's bundle and runs the boundary evaluation.
    """
    active = active_policy(kernel)
    candidate_kv = registry.get_version(kernel, version)
    candidate = load_version_report(candidate_kv)
    with session_scope() as session:
        champion_version = repo.get_alias(session, kernel=kernel, alias="champion")
    champion = None
    if champion_version is not None and champion_version != candidate_kv.version:
        champion_kv = registry.get_version(kernel, champion_version)
        champion = load_version_report(champion_kv)
        if needs_reevaluation(candidate, champion):
            with skill_sources(active.policy.skills.sources()):  # the champion measured on the policy's packs
                champion = (reevaluate or _reevaluate)(champion_kv, candidate)
    manifest = read_manifest(registry.fetch_bundle(candidate_kv))  # fetch_bundle verified every file
    decision = gate_version(candidate, champion, active.policy, manifest)
    return record_gate(candidate_kv, candidate, decision, champion_version=champion_version, active=active)


def record_gate(
    candidate_kv: registry.KernelVersion, candidate: BoundaryReport, decision: GateDecision, *,
    champion_version: str | None, active: ActivePolicy,
) -> dict:
    """Write a gate decision: its lifecycle-DB row (the truth), then its mirror on the MLflow
    version (``gate.*`` tags and the description's first section) so the UI shows why."""
    kernel = candidate_kv.name
    payload = json.loads(decision.model_dump_json())
    with session_scope() as session:
        repo.record_gate_decision(
            session,
            kernel=kernel,
            version=candidate_kv.version,
            champion_version=champion_version,
            passed=decision.passed,
            harness_hash=candidate.harness_hash,
            policy_sha256=active.sha256,
            decision=payload,
        )
    status = "passed" if decision.passed else "failed"
    summary = decision.summary()
    for key, value in gate_tags(passed=decision.passed, champion_version=champion_version, summary=summary).items():
        registry.set_version_tag(kernel, candidate_kv.version, key, value)
    job_part = candidate_kv.description.split(GATE_SEPARATOR)[-1]
    link = log_gate_decision(candidate_kv.run_id, payload) if candidate_kv.run_id else None
    probes = f"\n\nEvery probe's verdict: [{PROBES_TABLE}]({artifact_link(candidate_kv.run_id, PROBES_TABLE)})" if link else ""
    registry.set_version_description(
        kernel,
        candidate_kv.version,
        f"Gate {status.upper()} against champion {champion_version or '(none)'} "
        f"(policy {active.sha256[:12]}):\n\n{decision.table(link)}{probes}{GATE_SEPARATOR}{job_part}",
    )
    return {"kernel": kernel, "version": candidate_kv.version, "champion": champion_version, "status": status, **payload}


def _reevaluate(champion_kv: registry.KernelVersion, candidate: BoundaryReport) -> BoundaryReport:
    return evaluate_version(champion_kv, candidate.harness)


def approve(kernel: str, version: str, *, approver: str, note: str | None = None) -> int:
    """Record an approval from one of the policy's approvers; returns how many the version has."""
    active = active_policy(kernel)
    approvers = list(active.policy.approvals.approvers)
    if approver not in approvers:
        raise RefusedError(
            f"{approver!r} is not an approver of {kernel} (policy {active.sha256[:12]} lists: "
            f"{', '.join(approvers) or 'nobody'})"
        )
    registry.get_version(kernel, version)
    with session_scope() as session:
        repo.add_approval(session, kernel=kernel, version=version, approver=approver, note=note)
        repo.record_audit(session, actor=approver, action="approve", kernel=kernel, version=version, reason=note)
        return len(repo.approvals_for(session, kernel=kernel, version=version))


def promote(kernel: str, version: str, *, actor: str, reason: str | None = None, automatic: bool = False) -> dict:
    """Make ``kernel@version`` champion if its gate and approvals allow it (see module doc)."""
    try:
        return _promote(kernel, version, actor=actor, reason=reason, automatic=automatic)
    except RefusedError as exc:
        # the refused attempt is part of the audit trail: its own transaction, committed
        with session_scope() as session:
            repo.record_audit(
                session,
                actor=actor,
                action="promote",
                kernel=kernel,
                version=version,
                alias="champion",
                to_version=version,
                reason=reason,
                outcome="refused",
                details={"refusal": str(exc)},
            )
        raise


def _promote(kernel: str, version: str, *, actor: str, reason: str | None, automatic: bool) -> dict:
    active = active_policy(kernel)
    kv = registry.get_version(kernel, version)
    with session_scope() as session:
        champion = repo.get_alias(session, kernel=kernel, alias="champion")
        if champion == kv.version:
            raise RefusedError(f"{kernel}@{version} is already champion")
        gate = repo.latest_gate_decision(session, kernel=kernel, version=kv.version)
        if gate is None:
            raise RefusedError(f"{kernel}@{version} has not been gated; run `kernel-lifecycle gate {kernel} {version}`")
        if not gate.passed:
            raise RefusedError(f"{kernel}@{version} failed its gate: {_first_failure(gate.decision)}")
        if gate.champion_version != champion:
            raise RefusedError(
                f"{kernel}@{version} was gated against champion {gate.champion_version or '(none)'} "
                f"but the champion is now {champion or '(none)'}; gate it again"
            )
        if gate.policy_sha256 != active.sha256:
            raise RefusedError(
                f"{kernel}@{version} was gated under policy {str(gate.policy_sha256)[:12]}, "
                f"the active policy is {active.sha256[:12]}; gate it again"
            )
        approvals = active.policy.approvals
        if automatic:
            if not approvals.auto_promote:
                raise RefusedError(f"the policy of {kernel} does not allow automatic promotion")
        else:
            allowed = set(approvals.approvers)
            if allowed and actor not in allowed:
                raise RefusedError(f"{actor!r} may not promote {kernel}; approvers: {', '.join(sorted(allowed))}")
            got = {a.approver for a in repo.approvals_for(session, kernel=kernel, version=kv.version)} & allowed
            if len(got) < approvals.required:
                raise RefusedError(
                    f"{kernel}@{version} has {len(got)} of {approvals.required} required approvals; "
                    f"`kernel-lifecycle approve {kernel} {version}` by another approver"
                )
            _two_person_rule(session, kernel, kv.version, got, allow_self=approvals.allow_self_approval)
        previous = aliases.move_alias(
            session,
            name=kernel,
            alias="champion",
            version=kv.version,
            actor=actor,
            reason=reason,
            action="promote",
            expected=champion,
            details={"gate_id": gate.id, "policy_sha256": active.sha256, "automatic": automatic},
        )
    return {"kernel": kernel, "champion": kv.version, "previous": previous, "actor": actor}


def _two_person_rule(session, kernel: str, version: str, approvers: set[str], *, allow_self: bool) -> None:  # noqa: ANN001
    """The person who submitted the job that made a version cannot be its only approval (unless the
    policy's ``approvals.allow_self_approval`` says so)."""
    if allow_self or not approvers:
        return
    submitter = repo.submitter_of(session, kernel=kernel, version=version)
    if submitter is not None and approvers == {submitter}:
        raise RefusedError(
            f"{kernel}@{version}'s only approval is from {submitter}, who submitted the job that made it; "
            "another approver must approve it (two-person rule; the policy's approvals.allow_self_approval lifts it)"
        )


def _first_failure(decision: dict) -> str:
    for reason in decision.get("reasons", []):
        if not reason.get("passed", True):
            return reason.get("message", "")
    return "see `kernel-lifecycle kernels show`"
