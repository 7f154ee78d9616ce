"""The boundary evaluation: generate for each skill's probes, let its arbiter judge, compute
metrics with intervals, and run the checks. One function per use:

- ``measure_skill``: one skill, one split, a fixed subset: the per-checkpoint curve point;
- ``evaluate_kernel``: the report a version is registered and gated with (all checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from kernel_lifecycle.boundary import checks, prompts
from kernel_lifecycle.boundary.generation import Generation, generate
from kernel_lifecycle.boundary.metrics import mean_entropy, rate_interval
from kernel_lifecycle.boundary.overlap import language_of, probe_text
from kernel_lifecycle.boundary.report import COMPLETION_CHARS, BoundaryReport, HarnessConfig, ProblemResult, SkillMetrics
from kernel_lifecycle.boundary.scorers import Sample
from kernel_lifecycle.boundary.scorers.fanout import scorer_for
from kernel_lifecycle.boundary.skills import SPLITS, Probe, Skill
from kernel_lifecycle.settings import get_settings


def scorer(name: str):  # noqa: ANN201
    """One scorer instance per name, executor and process (its positive control runs once);
    under ``KL_EXECUTOR=ray`` it scores in batches across Ray workers."""
    return _scorer(name, get_settings().executor)


@lru_cache(maxsize=None)
def _scorer(name: str, executor: str):  # noqa: ANN202
    return scorer_for(name, executor)


def _samples(tokenizer, probes: list[Probe], generations: list[list[Generation]], scorer_name: str) -> list[Sample]:  # noqa: ANN001
    """What the scorer judges: each generation read back in the kernel's prompt format."""
    return [
        Sample(task_id=p.task_id, prompt=p.prompt, completion=prompts.completion(tokenizer, p, g.text, scorer_name),
               test=p.test, entry_point=p.entry_point)
        for p, gens in zip(probes, generations)
        for g in gens
    ]


def _metrics(
    skill: Skill, split: str, probes: list[Probe], generations: list[list[Generation]], verdicts, k: int  # noqa: ANN001
) -> SkillMetrics:
    problems, flat = [], iter(verdicts)
    for probe, gens in zip(probes, generations):
        judged = [next(flat) for _ in gens]
        problems.append(
            ProblemResult(
                task_id=probe.task_id,
                family=getattr(probe, "family", "") or "",
                n=len(gens),
                c=sum(v.passed for v in judged),
                truncated=sum(g.truncated for g in gens),
                no_code=sum(v.no_code for v in judged),
                result=judged[0].result if judged else "",
                completion=gens[0].text[:COMPLETION_CHARS] if gens else "",
            )
        )
    value, low, high = rate_interval([(p.n, p.c) for p in problems], k=k)
    all_gens = [g for gens in generations for g in gens]
    total = max(len(all_gens), 1)
    return SkillMetrics(
        skill=skill.name,
        scorer=skill.scorer,
        metric=skill.spec.metric,
        split=split,  # type: ignore[arg-type]
        n_problems=len(problems),
        n_samples=max((p.n for p in problems), default=0),
        k=k,
        value=value,
        ci_low=low,
        ci_high=high,
        mean_entropy=mean_entropy([g.mean_entropy for g in all_gens], [g.n_tokens for g in all_gens]),
        truncation_rate=sum(g.truncated for g in all_gens) / total,
        no_code_rate=sum(p.no_code for p in problems) / total,
        problems=problems,
    )


@dataclass
class _Run:
    metrics: SkillMetrics
    generations: list[list[Generation]]
    verdicts: list  # flat, in (problem, sample) order, as the scorer returned them


def _first(skill: Skill, split: str, max_problems: int | None) -> list[Probe]:
    """The first ``max_problems`` probes of a split (all of them for None or 0)."""
    return skill.probes(split)[:max_problems or None]  # type: ignore[arg-type]


def _run(
    model, tokenizer, skill: Skill, split: str, *, max_problems: int | None, max_new_tokens: int,
    n_samples: int = 1, temperature: float = 0.0, top_p: float = 1.0, k: int = 1, seed: int = 0,
    reuse: _Run | None = None,
) -> _Run:  # noqa: ANN001
    probes = _first(skill, split, max_problems)
    judge = scorer(skill.scorer)
    if reuse is not None and temperature == 0.0:
        # Greedy decoding is deterministic: a generation that ended before the old budget is
        # exactly what a larger budget gives, and so is its verdict. Only the truncated ones are
        # generated and judged again.
        redo = [i for i, gens in enumerate(reuse.generations) if any(g.truncated for g in gens)]
        fresh = generate(model, tokenizer, [prompts.render(tokenizer, probes[i], skill.instruction) for i in redo], max_new_tokens=max_new_tokens, seed=seed,
                         stop=prompts.stops(tokenizer))
        generations = list(reuse.generations)
        for i, gens in zip(redo, fresh):
            generations[i] = gens
        redone = iter(judge.score(_samples(tokenizer, [probes[i] for i in redo], fresh, skill.scorer)) if redo else [])
        old = iter(reuse.verdicts)
        verdicts, redo_set = [], set(redo)
        for i, gens in enumerate(reuse.generations):
            olds = [next(old) for _ in gens]
            verdicts += [next(redone) for _ in generations[i]] if i in redo_set else olds
    else:
        generations = generate(
            model, tokenizer, [prompts.render(tokenizer, p, skill.instruction) for p in probes], max_new_tokens=max_new_tokens,
            n_samples=n_samples, temperature=temperature, top_p=top_p, seed=seed, stop=prompts.stops(tokenizer),
        )
        verdicts = judge.score(_samples(tokenizer, probes, generations, skill.scorer))
    return _Run(_metrics(skill, split, probes, generations, verdicts, k), generations, verdicts)


def measure_skill(
    model, tokenizer, *, skill: Skill, split: str = "dev", max_problems: int | None = None,
    max_new_tokens: int = 160, seed: int = 0,
) -> SkillMetrics:  # noqa: ANN001
    """Greedy pass/compile rate of one skill on the first ``max_problems`` probes of a split."""
    return _run(model, tokenizer, skill, split, max_problems=max_problems, max_new_tokens=max_new_tokens, seed=seed).metrics


def measure_skills(
    model, tokenizer, skills: Mapping[str, Skill], *, split: str = "dev", max_problems: int | None = None,
    max_new_tokens: int = 160, seed: int = 0,
) -> dict[str, SkillMetrics]:  # noqa: ANN001
    """:func:`measure_skill` for each skill: a job's per-checkpoint curves, an inventory."""
    return {
        name: measure_skill(
            model, tokenizer, skill=skill, split=split, max_problems=max_problems, max_new_tokens=max_new_tokens, seed=seed
        )
        for name, skill in skills.items()
    }


def reference_controls(skills: Mapping[str, Skill], split: str, n: int = 8) -> dict[str, tuple[int, int]]:
    """How many of the first ``n`` reference solutions each skill's arbiter accepts (oracle path)."""
    out = {}
    for name, skill in skills.items():
        m = oracle_metrics(skill, split, max_problems=n)
        out[name] = (sum(p.c for p in m.problems), sum(p.n for p in m.problems))
    return out


def oracle_metrics(skill: Skill, split: str = "dev", *, max_problems: int | None = None) -> SkillMetrics:
    """The canonical solutions scored through the same scorer and metric code as a model.

    A harness that cannot give the reference solutions ~100% measures itself, not the model:
    this is the positive control of the whole path (samples, scorer call, per-problem counts,
    intervals), not just of the scorer.
    """
    probes = _first(skill, split, max_problems)
    generations = [[Generation(text=p.canonical_solution, n_tokens=0, truncated=False, mean_entropy=float("nan"))] for p in probes]
    verdicts = scorer(skill.scorer).score([
        Sample(task_id=p.task_id, prompt=p.prompt, completion=p.canonical_solution, test=p.test, entry_point=p.entry_point)
        for p in probes
    ])
    return _metrics(skill, split, probes, generations, verdicts, 1)


def evaluate_kernel(
    model,
    tokenizer,
    *,
    kernel: str,
    version: str | None,
    skills: Mapping[str, Skill],
    harness: HarnessConfig,
    settings: checks.CheckSettings | None = None,
    training_probes: Mapping[str, list[Probe]] | None = None,
    progress=None,  # noqa: ANN001
) -> BoundaryReport:  # noqa: ANN001
    """The full report: every skill on the gate split, again at twice the budget (only what was
    cut off is generated again), on ``fresh``; the generalization gaps; the checks.
    ``training_probes``: what the job trained on, by skill (the contamination check)."""
    settings = settings or checks.CheckSettings()
    gate_split = harness.split
    measured_splits = sorted({gate_split, "fresh"})
    harness = harness.model_copy(
        update={
            "scorers": {s.scorer: scorer(s.scorer).version() for s in skills.values()},
            "probe_digests": {f"{name}/{split}": skill.digest(split) for name, skill in skills.items() for split in measured_splits},
        }
    )
    options = dict(
        max_problems=harness.max_problems, n_samples=harness.n_samples, temperature=harness.temperature,
        top_p=harness.top_p, k=harness.k, seed=harness.seed,
    )
    task = progress.add_task("boundary evaluation", total=3 * len(skills)) if progress is not None else None

    def advance() -> None:
        if task is not None:
            progress.update(task, advance=1)

    main, doubled, fresh = {}, {}, {}
    for name, skill in skills.items():
        run = _run(model, tokenizer, skill, gate_split, max_new_tokens=harness.max_new_tokens, **options)
        main[name] = run.metrics
        advance()
        doubled[name] = _run(
            model, tokenizer, skill, gate_split, max_new_tokens=2 * harness.max_new_tokens, reuse=run, **options
        ).metrics
        advance()
        if gate_split == "fresh":
            fresh[name] = run.metrics
        elif skill.probes("fresh"):
            fresh[name] = _run(model, tokenizer, skill, "fresh", max_new_tokens=harness.max_new_tokens, **options).metrics
        advance()

    generalization, gaps = checks.generalization_check(
        main, fresh, tolerance=settings.generalization_tolerance, alpha=settings.alpha, seed=harness.seed
    )
    report_checks = [
        checks.truncation_check(main, doubled, alpha=settings.alpha, max_truncated_share=settings.max_truncated_share),
        generalization,
        checks.scorer_parity_check(reference_controls(skills, gate_split)),
    ]
    if training_probes is not None:
        # fresh alone claims new problems; dev, test and relearn are in-family (new names) by design
        report_checks.append(
            checks.contamination_check(
                [probe_text(p) for probes in training_probes.values() for p in probes],
                {n: [probe_text(p) for p in s.probes("fresh")] for n, s in skills.items()},
                languages={n: language_of(s.scorer) for n, s in skills.items()},
                max_share=settings.contamination_max_share,
            )
        )
    return BoundaryReport(
        kernel=kernel,
        version=version,
        harness=harness,
        harness_hash=harness.config_hash(),
        selection_split=harness.selection_split,
        gate_split=gate_split,
        skills=main,
        fresh=fresh,
        gaps=gaps,
        checks=report_checks,
        split_digests=split_digests(skills),
    )


def split_digests(skills: Mapping[str, Skill]) -> dict[str, str]:
    """``<skill>/<split>`` -> digest of every split file the skills have: the probe sets a report
    stands on (and the MLflow dataset inputs of its run)."""
    return {f"{name}/{split}": digest for name, skill in sorted(skills.items()) for split in SPLITS
            if (digest := skill.digest(split))}
