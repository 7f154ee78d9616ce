"""`kernel-lifecycle policies validate|show` through the real CLI entry point."""

from __future__ import annotations

import json

from tests.policy.conftest import VALID, line_of

# Skills declared with their scorers, so these tests do not depend on the bundled demo skills.
DECLARED = (
    VALID.replace("- name: python\n", "- name: toy_python\n      scorer: python_tests\n")
    .replace("- name: sql\n", "- name: toy_sql\n      scorer: python_tests\n")
    .replace("- name: cobol\n", "- name: toy_cobol\n      scorer: cobol_compile\n")
    .replace("skill: sql", "skill: toy_sql")
    .replace("skill: cobol", "skill: toy_cobol")
    .replace("[python]", "[toy_python]")
)


def test_validate_ok_exit_0(cli, write):
    path = write(DECLARED)
    code, out, err = cli("policies", "validate", path, "--today", "2026-11-23")
    assert code == 0, out + err
    assert "OK: 1 policy file(s) valid" in out


def test_validate_reports_every_error_of_every_file_exit_1(cli, write):
    bad_type = write(DECLARED.replace("{steps: 40,", "{steps: forty,"), "type.yaml")
    bad_cron = DECLARED.replace('"30 2 * * mon-fri"', '"* * 31 2 *"').replace("kernel: tiny-kernel", "kernel: other")
    bad_cron_path = write(bad_cron, "cron.yaml")
    code, out, err = cli("policies", "validate", bad_type, bad_cron_path, "--today", "2026-11-23")
    assert code == 1
    lines = out.strip().splitlines()
    # in the order the files were given, each file's issues by line
    assert lines[1].startswith(f"{bad_cron_path}:{line_of(bad_cron, '* * 31 2 *')}: triggers[2].cron: cron '* * 31 2 *' never fires")
    assert lines[0].startswith(f"{bad_type}:{line_of(DECLARED, 'steps: 40')}: plans.upskill.hyperparameters.steps: ")
    assert len(lines) == 2
    assert "2 problem(s) in 2 of 2 file(s)" in err


def test_validate_json(cli, write):
    text = DECLARED.replace("      tolerance: 0.1\n", "      tolerance: 0.1\n      sunset: 2026-01-01\n")
    path = write(text)
    code, out, _err = cli("policies", "validate", path, "--json", "--today", "2026-11-23")
    assert code == 1
    data = json.loads(out)
    assert data["valid"] is False
    (issue,) = data["issues"]
    assert issue["file"] == str(path)
    assert issue["line"] == line_of(text, "sunset: 2026-01-01")
    assert issue["field"] == "skills.retained[0].sunset"


def test_validate_a_folder(cli, write, tmp_path):
    write(DECLARED, "one.yaml")
    write("kernel: [broken\n", "two.yml")
    (tmp_path / "notes.txt").write_text("not a policy")
    code, out, _err = cli("policies", "validate", tmp_path, "--today", "2026-11-23")
    assert code == 1
    assert out.strip().splitlines() == [l for l in out.strip().splitlines() if "two.yml:" in l]


def test_show_json_and_table(cli, write):
    path = write(DECLARED)
    code, out, _err = cli("policies", "show", path, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["policy"]["kernel"] == "tiny-kernel"
    assert data["policy"]["plans"]["downskill"]["method"] == "npo"
    assert len(data["sha256"]) == 64
    code, out, _err = cli("policies", "show", path)
    assert code == 0 and "toy_cobol" in out and "npo" in out


def test_show_invalid_file_is_an_error(cli, write):
    path = write(DECLARED.replace("floor: 0.3", "floor: lots"))
    code, _out, err = cli("policies", "show", path)
    assert code == 1
    assert err.startswith("error: 1 problem(s) in policy") and "skills.retained[0].floor" in err
