"""Skill packs as users send them: validate (every problem with file and line, exit 1, no
traceback), import from HumanEval and MBPP files (the converted canonical solutions pass the
real python_tests scorer), scorer plugins that fail (one line, nothing registered), and the
gate refusing reports measured on different gate splits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kernel_lifecycle.boundary.evaluate import oracle_metrics
from kernel_lifecycle.boundary.scorers import Sample, get_scorer, scorer_names
from kernel_lifecycle.boundary.skill_import import HUMAN_EVAL, import_pack
from kernel_lifecycle.boundary.skillpack import SkillPackError, pack_problems
from kernel_lifecycle.boundary.skills import DEMO_SKILLS_DIR, load_skill
from kernel_lifecycle.errors import ConfigurationError

# three MBPP rows in MBPP's own format (tasks 2, 3 and 11 of mbpp.jsonl)
MBPP_ROWS = [
    {"text": "Write a function to find the similar elements from the given two tuple lists.",
     "code": "def similar_elements(test_tup1, test_tup2):\r\n  res = tuple(set(test_tup1) & set(test_tup2))\r\n  return (res) ",
     "task_id": 2, "test_setup_code": "",
     "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
                   "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))"],
     "challenge_test_list": []},
    {"text": "Write a python function to identify non-prime numbers.",
     "code": "import math\r\ndef is_not_prime(n):\r\n    result = False\r\n    for i in range(2,int(math.sqrt(n)) + 1):\r\n        if n % i == 0:\r\n            result = True\r\n    return result",
     "task_id": 3, "test_setup_code": "",
     "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True", "assert is_not_prime(35) == True"],
     "challenge_test_list": []},
    {"text": "Write a python function to remove first and last occurrence of a given character from the string.",
     "code": "def remove_Occ(s,ch): \r\n    for i in range(len(s)): \r\n        if (s[i] == ch): \r\n            s = s[0 : i] + s[i + 1:] \r\n            break\r\n    for i in range(len(s) - 1,-1,-1):  \r\n        if (s[i] == ch): \r\n            s = s[0 : i] + s[i + 1:] \r\n            break\r\n    return s ",
     "task_id": 11, "test_setup_code": "",
     "test_list": ["assert remove_Occ(\"hello\",\"l\") == \"heo\"", "assert remove_Occ(\"abcda\",\"a\") == \"bcd\""],
     "challenge_test_list": []},
]


def _texts(problems) -> list[str]:  # noqa: ANN001
    return [p.text() for p in problems]


def test_a_broken_pack_lists_every_problem_with_file_and_line(tmp_path: Path, cli) -> None:
    pack = tmp_path / "python"
    shutil.copytree(DEMO_SKILLS_DIR / "python", pack)
    (pack / "dev.jsonl").unlink()  # a missing split
    train = (pack / "train.jsonl").read_text().splitlines()
    first = json.loads(train[0])
    with (pack / "test.jsonl").open("a") as handle:
        handle.write(train[0] + "\n")  # a duplicate task id
        handle.write('{"task_id": "x", "prompt": "def f(:\n')  # a bad JSON line
        handle.write(json.dumps({"task_id": "y", "prompt": "p"}) + "\n")  # a probe without its solution
    fresh = (pack / "fresh.jsonl").read_text().splitlines()
    moved = {**json.loads(fresh[0]), "task_id": "python/relearn/moved", "family": first["family"]}
    (pack / "fresh.jsonl").write_text("\n".join([json.dumps(moved), *fresh[1:]]) + "\n")  # a train family in fresh
    (pack / "skill.json").write_text('{\n  "name": "python",\n  "scorer": "java_junit"\n}\n')  # an unknown scorer
    n_test = len((DEMO_SKILLS_DIR / "python" / "test.jsonl").read_text().splitlines())

    lines = _texts(pack_problems(pack))
    assert lines[0] == f"{pack}/skill.json:3: unknown scorer 'java_junit'; known scorers: {', '.join(scorer_names())} " \
        "(a plugin registers one in the 'kernel_lifecycle.scorers' entry-point group)"
    assert f"{pack}/dev.jsonl: missing split 'dev': a pack needs train.jsonl, dev.jsonl, test.jsonl" in lines
    assert f"{pack}/test.jsonl:{n_test + 1}: duplicate task_id {first['task_id']!r} (first at {pack}/train.jsonl:1)" in lines
    assert any(line.startswith(f"{pack}/test.jsonl:{n_test + 2}: not a JSON object") for line in lines)
    assert f"{pack}/test.jsonl:{n_test + 3}: 'canonical_solution' is a required property" in lines
    held_in = [line for line in lines if line.startswith(f"{pack}/fresh.jsonl:1: family {first['family']!r} is in fresh and in ")]
    assert [line.split(" is in fresh and in ")[1].split(" ")[0] for line in held_in] == ["train", "test", "relearn"]
    assert len(lines) == 8

    code, out, err = cli("skills", "validate", pack)
    assert code == 1 and out == ""
    assert err.splitlines() == [f"error: {line}" for line in lines]  # one line each, no traceback
    code, out, _ = cli("skills", "validate", pack, "--json")
    assert code == 1 and [p["line"] for p in json.loads(out)["problems"]][:2] == [3, None]
    assert cli("skills", "validate", DEMO_SKILLS_DIR / "python") == (0, f"{DEMO_SKILLS_DIR / 'python'}: a valid skill pack\n", "")


def test_human_eval_from_the_installed_package_is_a_valid_python_pack(tmp_path: Path) -> None:
    summary = import_pack(HUMAN_EVAL, fmt="humaneval", name="humaneval", out=tmp_path / "he", fresh=["HumanEval/0"], seed=1)
    assert summary.counts == {"train": 98, "dev": 16, "test": 33, "fresh": 1, "relearn": 16} and summary.families == 164
    assert pack_problems(summary.root) == []
    skill = load_skill(summary.root)
    assert [p.task_id for p in skill.probes("fresh")] == ["HumanEval/0"]
    m = oracle_metrics(skill, "test")  # the real scorer passes every canonical solution it imported
    assert (m.value, m.n_problems) == (1.0, 33)
    again = import_pack(HUMAN_EVAL, fmt="humaneval", name="humaneval", out=tmp_path / "he2", fresh=["HumanEval/0"], seed=1)
    assert load_skill(again.root).digest("test") == skill.digest("test")  # seeded: the same split


def test_mbpp_rows_become_probes_the_real_scorer_passes(tmp_path: Path) -> None:
    source = tmp_path / "mbpp.jsonl"
    source.write_text("".join(json.dumps({**r, "topic": "sets" if r["task_id"] == 2 else "numbers"}) + "\n" for r in MBPP_ROWS))
    with pytest.raises(SkillPackError, match=r"mbpp/test.jsonl: split 'test' holds no probe"):  # 2 probes, 3 splits
        import_pack(source, fmt="mbpp", name="mbpp", out=tmp_path / "mbpp", family_field="topic", fresh=["sets"],
                    fractions={"train": 0.4, "dev": 0.3, "test": 0.3})
    assert not (tmp_path / "mbpp").exists()
    summary = import_pack(source, fmt="mbpp", name="mbpp", out=tmp_path / "mbpp", family_field="topic",
                          fractions={"train": 0.4, "dev": 0.3, "test": 0.3})
    assert summary.counts == {"train": 1, "dev": 1, "test": 1} and summary.families == 2
    skill = load_skill(summary.root)
    probes = [p for split in ("train", "dev", "test") for p in skill.probes(split)]
    assert sorted(p.task_id for p in probes) == ["MBPP/11", "MBPP/2", "MBPP/3"]
    assert {p.task_id: p.family for p in probes}["MBPP/2"] == "sets"
    verdicts = get_scorer("python_tests").score([
        Sample(task_id=p.task_id, prompt=p.prompt, completion=p.canonical_solution, test=p.test, entry_point=p.entry_point)
        for p in probes
    ] + [Sample(task_id="wrong", prompt=probes[0].prompt, completion="def remove_Occ(s, ch):\n    return s\n",
                test=next(p for p in probes if p.task_id == "MBPP/11").test, entry_point="remove_Occ")])
    assert [v.passed for v in verdicts] == [True, True, True, False]


def test_bad_import_input_writes_nothing(tmp_path: Path, cli) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text(json.dumps(MBPP_ROWS[0]) + "\n{not json\n")
    code, _, err = cli("skills", "import", source, "--format", "mbpp", "--name", "m", "--out", tmp_path / "m")
    assert code == 1 and err.strip() == f"error: {source}:2: not a JSON object (Expecting property name enclosed in double quotes at column 2)"
    code, _, err = cli("skills", "import", source, "--format", "humaneval", "--name", "m", "--out", tmp_path / "m")
    assert code == 1 and "missing 'prompt' (is this the right --format?)" in err
    code, _, err = cli("skills", "import", "human-eval", "--format", "humaneval", "--name", "m", "--out", tmp_path / "m",
                       "--split", "train=0.9,dev=0.2")
    assert code == 1 and err.strip() == "error: --split: the fractions must be >= 0 and sum to 1 (got 1.1)"
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(SkillPackError, match="already exists and is not an empty folder"):
        import_pack(HUMAN_EVAL, fmt="humaneval", name="he", out=existing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "existing"]  # no half-written pack
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def _plugin(root: Path, name: str, module: str, source: str) -> Path:
    """A distribution installed into ``root`` as pip lays one out: its module and its dist-info
    with the scorer's entry point."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[kernel_lifecycle.scorers]\n{name} = {module}:Judge\n")
    return root


def test_a_plugin_that_raises_is_one_line_and_never_registered(tmp_path: Path, monkeypatch, cli) -> None:
    monkeypatch.syspath_prepend(str(_plugin(tmp_path, "crashy", "crashy_plugin", "raise RuntimeError('no licence server')\n")))
    monkeypatch.syspath_prepend(str(_plugin(tmp_path, "liar", "liar_plugin", (
        "from kernel_lifecycle.boundary.scorers import Scorer\n"
        "class Judge(Scorer):\n    name = 'liar'\n    default_timeout = 1.0\n"
        "    def version(self):\n        return 'liar 1'\n"
        "    def score(self, samples, *, workers=2, timeout=None):\n        raise KeyError('verdicts')\n"))))
    assert "crashy" not in scorer_names() and "liar" in scorer_names()
    with pytest.raises(ConfigurationError) as err:
        get_scorer("crashy")
    assert str(err.value) == ("scorer plugin 'crashy' (crashy_plugin:Judge) failed to load: RuntimeError: no licence server; "
                              "fix or uninstall the package that provides it")
    with pytest.raises(ConfigurationError, match=r"^scorer plugin 'liar' raised while scoring: KeyError: 'verdicts'; nothing"):
        get_scorer("liar").score([Sample(task_id="t", completion="x")])
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": "t", "completion": "x"}) + "\n")
    code, out, err = cli("boundary", "score", "--scorer", "crashy", samples)
    assert code == 1 and out == "" and err.startswith("error: scorer plugin 'crashy' (crashy_plugin:Judge) failed to load")
    assert "Traceback" not in err
    pack = tmp_path / "pack"
    shutil.copytree(DEMO_SKILLS_DIR / "sql", pack)
    (pack / "skill.json").write_text('{"name": "sql", "scorer": "crashy"}')
    assert _texts(pack_problems(pack))[0].startswith(f"{pack}/skill.json:1: scorer plugin 'crashy' (crashy_plugin:Judge) failed to load")


def test_the_gate_refuses_reports_measured_on_different_gate_splits() -> None:
    from kernel_lifecycle.gates import decide
    from kernel_lifecycle.policy.schema import Policy, PolicyContext
    from tests.factories import make_report

    policy = Policy.model_validate(
        {"kernel": "python-kernel", "owners": ["o"], "approvals": {"approvers": ["a"]},
         "skills": {"retained": [{"name": "python", "floor": 0.5}]}, "gate": {"required_checks": [], "harness": {"max_new_tokens": 160}}},
        context={"policy": PolicyContext.default(skills={"python": "python_tests"})},
    )
    champion = make_report().model_copy(update={"version": "1", "split_digests": {"python/test": "aaa", "python/train": "t"}})
    same = make_report().model_copy(update={"version": "2", "split_digests": {"python/test": "aaa", "python/train": "u"}})
    edited = same.model_copy(update={"split_digests": {"python/test": "bbb"}})
    assert decide(same, champion, policy).passed  # another train split does not matter to the gate
    decision = decide(edited, champion, policy)
    (failure,) = decision.failures()
    assert failure.rule == "scorer_parity" and failure.message == (
        "the test split of python changed since the champion v1 was measured: re-measure the champion on today's "
        "splits (kernel-lifecycle boundary inventory python-kernel@1 --remeasure), then gate again")
    assert not any(r.rule == "non_inferiority" for r in decision.reasons)  # nothing compared across splits


POLICY = """\
kernel: {kernel}
owners: [o]
approvals: {{approvers: [a]}}
skills:
  retained:
    - name: {skill}
      floor: 0.1
      pack: {pack}
"""


def test_each_policy_reads_its_own_packs_and_a_broken_pack_is_a_policy_issue(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from kernel_lifecycle.boundary.skills import skill_sources, skills_named
    from kernel_lifecycle.errors import NotFoundError
    from kernel_lifecycle.jobs.recipes import from_policy
    from kernel_lifecycle.policy.loader import check_policy, parse_policy

    bench = import_pack(HUMAN_EVAL, fmt="humaneval", name="bench", out=tmp_path / "bench").root
    shell = tmp_path / "shell"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "kl-shell-scorer" / "skills" / "shell", shell)
    (shell / "skill.json").write_text('{"name": "shell", "scorer": "sql_exec"}')  # a built-in: no plugin needed here
    a = parse_policy(POLICY.format(kernel="a", skill="bench", pack=bench))
    b = parse_policy(POLICY.format(kernel="b", skill="shell", pack=shell))
    assert from_policy("distill", a, None, skills=["bench"]).skill_sources == {"bench": str(bench.resolve())}
    with pytest.raises(NotFoundError, match="unknown skill 'bench'"):
        skills_named(["bench"])  # outside a job of kernel a, no kernel's packs are in reach

    def skills_of(policy) -> set[str]:  # noqa: ANN001
        with skill_sources(policy.skills.sources()):
            return {s.root.name for s in skills_named([policy.skills.retained[0].name]).values()}

    with ThreadPoolExecutor(2) as pool:  # two kernels' jobs at once in one scheduler process
        assert list(pool.map(skills_of, [a, b, a, b])) == [{"bench"}, {"shell"}, {"bench"}, {"shell"}]

    (shell / "dev.jsonl").unlink()
    _, issues = check_policy(POLICY.format(kernel="b", skill="shell", pack=shell), source="b.yaml")
    (issue,) = issues
    assert issue.field == "skills.retained[0].pack" and issue.line == 8
    assert issue.message == f"skill pack of 'shell' is not valid: {shell}/dev.jsonl: missing split 'dev': a pack needs train.jsonl, dev.jsonl, test.jsonl"
    # a stored snapshot (read by every job and gate) is not re-checked line by line: only that its packs are there
    from kernel_lifecycle.policy.schema import PolicyContext

    text = POLICY.format(kernel="b", skill="shell", pack=shell)
    assert check_policy(text, context=PolicyContext.stored())[1] == []
    shutil.rmtree(shell)
    (gone,) = check_policy(text, context=PolicyContext.stored())[1]
    assert gone.message == f"skill pack of 'shell' is not valid: {shell}/skill.json: missing: the pack is gone"
