"""The demo skills: reproducible from the seed, disjoint splits, canonical solutions pass their real scorers."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kernel_lifecycle.boundary.scorers import get_scorer
from kernel_lifecycle.boundary.scorers.base import Sample
from kernel_lifecycle.boundary.skills import DEMO_SKILLS_DIR, SPLITS, demo_skills
from kernel_lifecycle.demo.generate_skills import SIZES, generate

SKILLS = {"python": "python_tests", "cobol": "cobol_compile", "sql": "sql_exec"}


def test_regenerating_from_the_seed_is_byte_identical(tmp_path: Path) -> None:
    generate(tmp_path, check=False)
    committed = sorted(p.relative_to(DEMO_SKILLS_DIR) for p in DEMO_SKILLS_DIR.rglob("*") if p.is_file())
    regenerated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert regenerated == committed
    for rel in committed:
        assert (tmp_path / rel).read_bytes() == (DEMO_SKILLS_DIR / rel).read_bytes(), rel


def test_a_different_seed_gives_different_data(tmp_path: Path) -> None:
    generate(tmp_path, seed=1, check=False)
    assert (tmp_path / "sql" / "train.jsonl").read_bytes() != (DEMO_SKILLS_DIR / "sql" / "train.jsonl").read_bytes()


def test_three_skills_with_their_scorers_and_sizes() -> None:
    skills = demo_skills(DEMO_SKILLS_DIR)
    assert {name: s.scorer for name, s in skills.items()} == SKILLS
    assert skills["cobol"].spec.metric == "compile_rate"
    for skill in skills.values():
        for split in SPLITS:
            assert len(skill.probes(split)) == SIZES[split]


def test_dev_and_fresh_prompts_never_appear_in_train_nor_in_each_other() -> None:
    for skill in demo_skills(DEMO_SKILLS_DIR).values():
        prompts = {split: [p.prompt for p in skill.probes(split)] for split in SPLITS}
        for split in SPLITS:
            assert len(set(prompts[split])) == len(prompts[split]), (skill.name, split)
        assert not set(prompts["train"]) & set(prompts["dev"])
        assert not set(prompts["train"]) & set(prompts["fresh"])
        assert not set(prompts["dev"]) & set(prompts["fresh"])
        # solutions too: a held-out constant/name combination has a solution never trained on
        train_solutions = {p.canonical_solution for p in skill.probes("train")}
        assert sum(p.canonical_solution in train_solutions for p in skill.probes("fresh")) < len(prompts["fresh"]) / 2


@pytest.mark.parametrize("name", sorted(SKILLS))
def test_a_sample_of_every_split_passes_its_real_scorer(name: str) -> None:
    skill = demo_skills(DEMO_SKILLS_DIR)[name]
    rng = random.Random(0)
    probes = [p for split in SPLITS for p in rng.sample(skill.probes(split), 4)]
    samples = [Sample(task_id=p.task_id, prompt=p.prompt, completion=p.canonical_solution, test=p.test,
                      entry_point=p.entry_point) for p in probes]
    verdicts = get_scorer(skill.scorer).score(samples)
    assert [v.result for v in verdicts if not v.passed] == []
    # and the scorer can fail: a wrong answer is judged wrong
    wrong = [s.model_copy(update={"completion": _break(name, s.completion)}) for s in samples[:3]]
    assert not any(v.passed for v in get_scorer(skill.scorer).score(wrong))


def _break(name: str, completion: str) -> str:
    if name == "python":
        return "    return None\n"
    if name == "cobol":
        return completion.replace("PROCEDURE DIVISION.", "PROCEDURE DIVISON.")
    return completion.replace("SELECT", "SELECT 1,", 1)


def test_the_shipped_data_passes_the_contamination_check() -> None:
    from kernel_lifecycle.boundary.checks import contamination_check

    skills = demo_skills(DEMO_SKILLS_DIR)
    result = contamination_check(
        [p.prompt + p.canonical_solution for s in skills.values() for p in s.probes("train")],
        {n: [p.prompt + p.canonical_solution for split in ("dev", "fresh") for p in s.probes(split)]
         for n, s in skills.items()},
    )
    assert result.passed, result.detail


def test_train_shows_every_cobol_word_that_dev_and_fresh_ask_for() -> None:
    # held-out *combinations*, not held-out vocabulary: a word train never showed is not a skill test
    import re

    cobol = demo_skills(DEMO_SKILLS_DIR)["cobol"]
    words = {split: {w for p in cobol.probes(split) for w in re.findall(r'"([A-Z]+)"', p.canonical_solution)}
             for split in SPLITS}
    assert words["dev"] | words["fresh"] <= words["train"]
