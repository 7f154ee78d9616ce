"""Policies refuse bad input with file, line and field; the example policy validates."""

from __future__ import annotations

import inspect
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from kernel_lifecycle.errors import PolicyError
from kernel_lifecycle.policy import (
    PolicyInvalid,
    check_policy,
    load_policy,
    parse_policy,
    policy_snapshot,
    validate_files,
)
from kernel_lifecycle.policy.schema import Policy, PolicyContext, next_fire_time
from tests.policy.conftest import SKILLS, TODAY, VALID, line_of

EXAMPLE = Path(__file__).resolve().parents[2] / "policies" / "python-kernel.yaml"


def only_issue(text: str, ctx: PolicyContext, source: str = "p.yaml"):
    policy, issues = check_policy(text, source=source, context=ctx)
    assert policy is None
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0]


def test_valid_policy_parses_with_defaults(ctx):
    policy = parse_policy(VALID, context=ctx)
    assert policy.kernel == "tiny-kernel"
    assert policy.tolerance_for(policy.skills.retained[0]) == 0.1
    assert policy.tolerance_for(policy.skills.retained[1]) == 0.05  # gate default
    assert policy.plans.downskill.method_options() == {"beta": 0.1, "retain_weight": 1.0}
    assert [t.kind for t in policy.triggers] == ["manual", "sunset", "cron"]
    assert policy.trigger_ids()[2] == "tiny-kernel:cron:2"
    assert policy.plans.upskill.data_skill == "sql"


def test_example_policy_validates(ctx):
    loaded = load_policy(EXAMPLE, context=ctx)
    assert loaded.policy.plans.downskill.method == "npo"
    assert [t.kind for t in loaded.policy.triggers] == ["manual", "manual", "sunset", "cron"]


def test_example_policy_validates_against_the_demo_skills():
    """The shipped example against the real demo skills and scorers (not injected ones)."""
    from kernel_lifecycle.boundary.skills import demo_skills

    assert {"python", "sql", "cobol"} <= set(demo_skills())  # bundled in kernel_lifecycle/demo/skills
    loaded = load_policy(EXAMPLE, context=PolicyContext.default(today=TODAY))
    assert loaded.policy.kernel == "python-kernel"
    assert {s.name for s in loaded.policy.skills.retained} == {"python", "sql"}
    assert loaded.policy.retired("cobol").sunset > TODAY
    # generalization is reported but not required by the demo policy (the demo kernel does not generalize)
    assert set(loaded.policy.gate.required_checks) == {"truncation", "scorer_parity", "contamination", "relearning", "retain_only", "membership"}
    # the demo's reference for cobol is a retrain: every ancestor of the downskill, and the demo base, learned cobol
    assert loaded.policy.gate.relearning.reference == "retrain" and loaded.policy.gate.membership.max_gap is None


def test_yaml_syntax_error_has_line_and_column(ctx):
    text = VALID.replace("    - name: sql\n", "    - name: [sql\n")
    issue = only_issue(text, ctx)
    assert issue.file == "p.yaml"
    assert issue.line == line_of(text, "floor: 0.2")  # where the parser found the problem
    assert issue.field == ""
    assert "YAML syntax error" in issue.message


def test_unknown_key_points_at_the_key(ctx):
    text = VALID.replace("      tolerance: 0.1\n", "      tolerence: 0.1\n")
    issue = only_issue(text, ctx)
    assert (issue.line, issue.column) == (line_of(text, "tolerence"), 7)
    assert issue.field == "skills.retained[0].tolerence"
    assert "unknown key" in issue.message


def test_unknown_top_level_key(ctx):
    text = VALID + "notes: hello\n"
    issue = only_issue(text, ctx)
    assert (issue.line, issue.field) == (line_of(text, "notes:"), "notes")


def test_wrong_type(ctx):
    text = VALID.replace("{steps: 40,", "{steps: forty,")
    issue = only_issue(text, ctx)
    assert issue.line == line_of(text, "steps: forty")
    assert issue.field == "plans.upskill.hyperparameters.steps"
    assert "integer" in issue.message and "'forty'" in issue.message


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("61 * * * *", "higher than the maximum value (59)"),  # APScheduler refuses it
        ("* * 31 2 *", "never fires"),  # valid to APScheduler, but February has no 31st
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("0 3 * *", "expected 5"),
        ("0 3 * * 0", "by name"),  # Monday to APScheduler 3, Sunday to cron: refused
    ],
)
def test_impossible_cron(ctx, cron, words):
    text = VALID.replace('"30 2 * * mon-fri"', f'"{cron}"')
    issue = only_issue(text, ctx)
    assert issue.line == line_of(text, cron)
    assert issue.field == "triggers[2].cron"  # the discriminator tag 'cron' is not in the path
    assert words in issue.message


def test_cron_next_fire_time_uses_its_time_zone():
    # 2026-11-23 is a Monday: the next weekday 02:30 in Berlin is that same day
    fire = next_fire_time("30 2 * * mon-fri", "Europe/Berlin", TODAY)
    assert fire == datetime(2026, 11, 23, 2, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert next_fire_time("0 0 29 2 *", "UTC", TODAY).date() == date(2028, 2, 29)


def test_unknown_time_zone_is_located_under_the_trigger(ctx):
    text = VALID.replace("timezone: Europe/Berlin", "timezone: Mars/Olympus")
    issue = only_issue(text, ctx)
    assert (issue.line, issue.field) == (line_of(text, "Mars/Olympus"), "triggers[2].timezone")


def test_past_sunset_of_a_retained_skill_is_refused(ctx):
    text = VALID.replace("      tolerance: 0.1\n", "      tolerance: 0.1\n      sunset: 2026-06-30\n")
    issue = only_issue(text, ctx)
    assert issue.line == line_of(text, "sunset: 2026-06-30")
    assert issue.field == "skills.retained[0].sunset"
    assert "2026-06-30 is past" in issue.message and "2026-11-23" in issue.message
    # the same file is fine on a day before that sunset: the date is the rule, not the field
    earlier = PolicyContext.default(today=date(2026, 6, 1), skills=SKILLS)
    assert check_policy(text, context=earlier)[1] == []


def test_unknown_skill_name(ctx):
    text = VALID.replace("    - name: sql\n", "    - name: fortran\n").replace("skill: sql", "skill: fortran")
    issue = only_issue(text, ctx)
    assert issue.line == line_of(text, "name: fortran")
    assert issue.field == "skills.retained[1].name"
    assert "unknown skill 'fortran'" in issue.message and "cobol, python, sql" in issue.message


def test_declared_skill_with_a_known_scorer_is_accepted_and_unknown_scorer_refused(ctx):
    declared = VALID.replace("    - name: sql\n", "    - name: fortran\n      scorer: python_tests\n").replace(
        "skill: sql", "skill: fortran"
    )
    assert check_policy(declared, context=ctx)[1] == []
    bad = declared.replace("scorer: python_tests", "scorer: vibes")
    issue = only_issue(bad, ctx)
    assert (issue.field, issue.line) == ("skills.retained[1].scorer", line_of(bad, "scorer: vibes"))


def test_skill_both_retained_and_retired(ctx):
    text = VALID.replace("    - name: cobol\n", "    - name: python\n").replace("skill: cobol", "skill: python")
    _policy, issues = check_policy(text, context=ctx)
    fields = {i.field: i for i in issues}
    assert "both retained and retired" in fields["skills.retired[0].name"].message


def test_downskill_method_by_name_only(ctx):
    text = VALID.replace("method: npo", "method: kernel_lifecycle.unlearning.npo.NPO")
    issue = only_issue(text, ctx)
    assert issue.field == "plans.downskill.method"
    assert "unknown unlearning method" in issue.message and "npo, grad_diff, grad_ascent, negation" in issue.message


def test_method_options_must_fit_the_method(ctx):
    text = VALID.replace("method: npo", "method: grad_ascent")
    _policy, issues = check_policy(text, context=ctx)
    assert {i.field for i in issues} == {"plans.downskill.options.beta", "plans.downskill.options.retain_weight"}
    assert all("its options: none" in i.message for i in issues)


def test_options_written_under_hyperparameters_are_still_read(ctx):
    """Policies from before ``options`` existed (and their stored snapshots) keep working."""
    text = VALID.replace(
        "    hyperparameters: {steps: 30, lr: 2.0e-3, eval_every: 10, rank: 4}\n    options: {beta: 0.1, retain_weight: 1.0}\n",
        "    hyperparameters: {steps: 30, lr: 2.0e-3, beta: 0.3, retain_weight: 1.0, eval_every: 10, rank: 4}\n",
    )
    assert text != VALID
    assert parse_policy(text, context=ctx).plans.downskill.method_options() == {"beta": 0.3, "retain_weight": 1.0}


def test_training_on_the_dev_split_is_refused(ctx):
    text = VALID.replace("replay: {skills: [python], ratio: 0.25}", "replay: {skills: [python], ratio: 0.25}\n    data: {split: dev}")
    issue = only_issue(text, ctx)
    assert issue.field == "plans.upskill.data.split" and "train" in issue.message


def test_sunset_trigger_must_name_the_retired_skill(ctx):
    text = VALID.replace("  - kind: sunset\n    skill: cobol", "  - kind: sunset\n    skill: python")
    _policy, issues = check_policy(text, context=ctx)
    by_field = {i.field: i.message for i in issues}
    assert "not in skills.retired" in by_field["triggers[1].skill"]


def test_unknown_trigger_kind(ctx):
    text = VALID.replace("  - kind: manual\n", "  - kind: hourly\n")
    issue = only_issue(text, ctx)
    assert (issue.field, issue.line) == ("triggers[0]", line_of(text, "kind: hourly"))
    assert "'hourly'" in issue.message


def test_duplicate_keys_are_refused(ctx):
    text = VALID.replace("kernel: tiny-kernel\n", "kernel: tiny-kernel\nkernel: other\n")
    issue = only_issue(text, ctx)
    assert (issue.line, issue.field) == (2, "kernel") and "first on line 1" in issue.message
    # a nested repeat in flow style too, each at its line and path, with the file's other issues
    text = text.replace("{steps: 40,", "{steps: 40, steps: 41,").replace("floor: 0.3", "floor: 3")
    _policy, issues = check_policy(text, context=ctx)
    steps = line_of(text, "steps: 41")
    assert [(i.line, i.field) for i in issues] == [
        (2, "kernel"),
        (line_of(text, "floor: 3"), "skills.retained[0].floor"),
        (steps, "plans.upskill.hyperparameters.steps"),
    ]
    assert issues[2].column == text.splitlines()[steps - 1].index("steps: 41") + 1
    assert f"first on line {steps}" in issues[2].message


def test_yaml_1_2_scalars(ctx):
    """ruamel.yaml reads YAML 1.2: ``on`` is a key like any other and 036 is thirty-six."""
    issue = only_issue(VALID + "on: 1\n", ctx)
    assert (issue.field, issue.line) == ("on", line_of(VALID + "on: 1\n", "on: 1"))
    assert parse_policy(VALID.replace("min_probes: 30", "min_probes: 036"), context=ctx).gate.min_probes == 36


def test_every_error_is_reported_at_once(ctx):
    text = (
        VALID.replace("{steps: 40,", "{steps: forty,")
        .replace('"30 2 * * mon-fri"', '"61 * * * *"')
        .replace("      tolerance: 0.1\n", "      tolerence: 0.1\n")
        .replace("required: 1", "required: 3")
    )
    _policy, issues = check_policy(text, source="p.yaml", context=ctx)
    # 'required' is a cross-field rule: it runs only once the structure is valid
    assert [i.field for i in issues] == [
        "skills.retained[0].tolerence",
        "plans.upskill.hyperparameters.steps",
        "triggers[2].cron",
    ]
    assert all(i.file == "p.yaml" and i.line > 0 for i in issues)
    fixed = text.replace("tolerence", "tolerance").replace("steps: forty", "steps: 40").replace('"61 * * * *"', '"0 1 * * *"')
    issue = only_issue(fixed, ctx)
    assert (issue.field, issue.line) == ("approvals.required", line_of(fixed, "required: 3"))


def test_parse_policy_raises_a_policy_error_with_every_issue(ctx):
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(VALID.replace("floor: 0.3", "floor: 3"), source="x.yaml", context=ctx)
    assert isinstance(caught.value, PolicyError)
    (issue,) = caught.value.issues
    assert issue.field == "skills.retained[0].floor" and "less than or equal to 1" in issue.message
    assert "x.yaml:7: skills.retained[0].floor" in str(caught.value)


def test_model_validate_alone_still_enforces_cross_field_rules(ctx):
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(VALID.replace("skill: sql", "skill: cobol", 1))
    with pytest.raises(ValidationError, match=r"plans\.upskill\.skill: skill 'cobol' is not in skills\.retained"):
        Policy.model_validate(data, context={"policy": ctx})


def test_load_policy_fingerprints_the_bytes(write, ctx):
    path = write(VALID)
    loaded = load_policy(path, context=ctx)
    import hashlib

    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    snapshot = policy_snapshot(loaded)
    assert snapshot["content"] == VALID and snapshot["kernel"] == "tiny-kernel"
    # what `policies apply` passes on, plus the actor
    from kernel_lifecycle.db.repo import record_policy_snapshot

    params = set(inspect.signature(record_policy_snapshot).parameters) - {"session", "applied_by"}
    assert set(snapshot) == params


def test_validate_files_reports_each_file_and_kernel_clashes(write, ctx):
    a = write(VALID, "a.yaml")
    b = write(VALID, "b.yaml")
    c = write(VALID.replace("floor: 0.3", "floor: high"), "c.yaml")
    issues = validate_files([a, b, c, a.parent / "missing.yaml"], context=ctx)
    assert [(Path(i.file).name, i.field) for i in issues] == [
        ("b.yaml", "kernel"),
        ("c.yaml", "skills.retained[0].floor"),
        ("missing.yaml", ""),
    ]
    assert "already has a policy in" in issues[0].message and issues[0].line == 1


@pytest.mark.parametrize("tagged", ["!!python/object/apply:os.system ['true']", "!local text"])
def test_only_safe_yaml(ctx, tagged):
    text = VALID.replace("description: a test policy", f"description: {tagged}")
    issue = only_issue(text, ctx)
    assert issue.line == line_of(text, tagged) and "unsupported YAML tag" in issue.message


def test_not_utf8(ctx):
    issue = only_issue(VALID.encode("utf-8") + b"\xff\xfe", ctx)
    assert "not UTF-8" in issue.message
