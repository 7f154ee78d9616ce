"""`kernel-lifecycle skills ...`: the skills under KL_SKILLS_DIR (default: the bundled demo skills).

``overlap`` lists held-out probes that are near-duplicates of a train probe: the same problem up
to names, constants and formatting. dev, test and relearn are in-family by design, so there it
says how much they are copies; ``fresh`` should show next to none. It only reports: exit 0.
"""

from __future__ import annotations

import dataclasses

import typer

from kernel_lifecycle.cli.common import JsonOption
from kernel_lifecycle.cli.output import console, print_json, print_table

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


def register(app: typer.Typer) -> None:
    app.add_typer(skills_app, name="skills")
