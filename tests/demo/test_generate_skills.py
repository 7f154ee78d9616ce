"""The demo skills: reproducible from the seed, disjoint splits, held-out fresh families, canonical
solutions pass their real scorers."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kernel_lifecycle.boundary.scorers import get_scorer
from kernel_lifecycle.boundary.scorers.base import Sample
from kernel_lifecycle.boundary.skills import DEMO_SKILLS_DIR, PRETRAIN_FILE, SPLITS, Probe, demo_skills
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


def _pretrain(name: str) -> list[Probe]:
    lines = (DEMO_SKILLS_DIR / name / PRETRAIN_FILE).read_text(encoding="utf-8").splitlines()
    return [Probe.model_validate_json(line) for line in lines]


def test_no_prompt_or_solution_appears_in_two_splits_nor_in_the_pretraining_extra() -> None:
    for skill in demo_skills(DEMO_SKILLS_DIR).values():
        groups = {split: skill.probes(split) for split in SPLITS} | {"pretrain": _pretrain(skill.name)}
        seen: dict[str, str] = {}
        for group, probes in groups.items():
            for p in probes:
                assert p.prompt not in seen, (skill.name, group, seen.get(p.prompt), p.prompt)
                seen[p.prompt] = group
        # solutions too, outside the training families' few constant-free queries
        fresh_solutions = {p.canonical_solution for p in groups["fresh"]}
        others = {p.canonical_solution for g, probes in groups.items() if g != "fresh" for p in probes}
        assert not fresh_solutions & others, skill.name


def test_every_probe_names_its_family_and_fresh_families_are_held_out() -> None:
    for skill in demo_skills(DEMO_SKILLS_DIR).values():
        families = {split: {p.family for p in skill.probes(split)} for split in SPLITS}
        assert all(families[split] and "" not in families[split] for split in SPLITS), skill.name
        for split in ("dev", "test", "relearn"):
            assert families[split] <= families["train"], (skill.name, split)
        assert len(families["fresh"]) >= 5, skill.name  # several held-out shapes, not one
        in_family = families["train"] | families["dev"] | families["test"] | families["relearn"]
        assert not families["fresh"] & in_family, skill.name
        assert {p.family for p in _pretrain(skill.name)} == families["fresh"]  # the base may know them


def test_fresh_is_no_shape_of_any_other_split_while_in_family_splits_are() -> None:
    from kernel_lifecycle.boundary.overlap import language_of, near_duplicates

    for skill in demo_skills(DEMO_SKILLS_DIR).values():
        language = language_of(skill.scorer)
        fresh = [(p.task_id, p.prompt + p.canonical_solution) for p in skill.probes("fresh")]
        for split in ("train", "dev", "test", "relearn"):
            other = [(p.task_id, p.prompt + p.canonical_solution) for p in skill.probes(split)]
            assert near_duplicates(other, fresh, language) == {}, (skill.name, split)
            if split != "train":
                assert len(near_duplicates(skill_texts(skill, "train"), other, language)) == len(other)


def skill_texts(skill, split: str) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(p.task_id, p.prompt + p.canonical_solution) for p in skill.probes(split)]


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
    return "SELECT 1 UNION ALL " + completion  # one row too many, even where the answer is no rows


def test_the_shipped_data_passes_the_contamination_check() -> None:
    from kernel_lifecycle.boundary.checks import contamination_check
    from kernel_lifecycle.boundary.overlap import language_of

    skills = demo_skills(DEMO_SKILLS_DIR)
    result = contamination_check(
        [p.prompt + p.canonical_solution for s in skills.values() for p in s.probes("train")],
        {n: [p.prompt + p.canonical_solution for p in s.probes("fresh")] for n, s in skills.items()},
        languages={n: language_of(s.scorer) for n, s in skills.items()},
    )
    assert result.passed, result.detail
    assert all(v == 0.0 for v in result.numbers.values()), result.numbers


def test_train_shows_every_cobol_word_that_in_family_splits_ask_for() -> None:
    # in-family splits hold new *combinations*, not new vocabulary: a word train never showed
    # is not a skill test (fresh may need the base's pretraining: that is its question)
    import re

    cobol = demo_skills(DEMO_SKILLS_DIR)["cobol"]
    words = {split: {w for p in cobol.probes(split) for w in re.findall(r'"([A-Z]+)"', p.canonical_solution)}
             for split in SPLITS}
    assert words["dev"] | words["test"] | words["relearn"] <= words["train"]
