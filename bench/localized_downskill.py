"""A localized downskill against today's (LoRA on every layer), on the demo base, same everything else.

The quickstart's downskill (retire cobol with NPO, keep python and sql; 60 steps, lr 2e-3,
rank 8, batch 8, measured every 10 steps on 64 dev probes per skill) runs twice from the same
model and seed:

- ``all``: today's placement, LoRA on every layer's attention and MLP projections;
- ``localized``: cobol's map (per-head ablation, ``boundary.localize``) picks its top-k heads,
  heads in python's or sql's top-k are left alone, and the adapter goes on those heads only
  (attention projections of their layers, confined by a head mask).

Printed per run: the boundary step (first checkpoint with cobol's upper bound at or under its
ceiling and python, sql within tolerance of their start), cobol's upper bound there, each
retained skill's drop there, and cobol after the downskill job's relearning probe. The peer is
the ``all`` run of the same invocation.

The model is the demo base itself (4 layers x 4 heads; it knows all three skills), not the
quickstart's distilled 2-layer kernel: more heads to choose from, and no registry run needed.
Uses these pieces of ``kernel_lifecycle.jobs`` as they are: ``downskill.DownskillSpec``,
``downskill.choose_boundary``, ``relearning.relearning_check``, ``common.Curves``,
``common.Thresholds``, ``common.encode_skills``.

    KL_HOME=/tmp/bench-home python bench/localized_downskill.py [--steps 60] [--eval-every 10] [--k 3]
"""

from __future__ import annotations

import argparse
import json
import time


def downskill_once(base_dir: str, spec, placement_kwargs: dict | None, run_name: str) -> dict:  # noqa: ANN001
    from peft import set_peft_model_state_dict

    from kernel_lifecycle.boundary.skills import skills_named
    from kernel_lifecycle.jobs import common
    from kernel_lifecycle.boundary.relearning import relearning_check
    from kernel_lifecycle.jobs.downskill import choose_boundary, relearn_budget
    from kernel_lifecycle.models.loading import load_base
    from kernel_lifecycle.registry.tracking import client, experiment_id
    from kernel_lifecycle.training.data import batches, paired_batches, pad_id_of
    from kernel_lifecycle.training.lora import active_adapter, attach_lora
    from kernel_lifecycle.unlearning import get_method

    started = time.perf_counter()
    model, tokenizer = load_base(base_dir)
    model = attach_lora(model, adapter_name="downskill", r=spec.rank, alpha=spec.lora_alpha, seed=spec.seed, **(placement_kwargs or {}))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    forget, retain = skills_named([spec.skill]), skills_named(spec.retain)
    pad = pad_id_of(tokenizer)
    method = get_method(spec.method, **spec.method_options)
    run = client().create_run(experiment_id("bench-localized-downskill"), run_name=run_name)
    curves = common.Curves(
        run.info.run_id, tokenizer, {**retain, **forget}, roles={spec.skill: "forget"}, max_problems=spec.eval_problems,
        max_new_tokens=spec.harness.max_new_tokens, seed=spec.seed, keep_adapter=True,
    )
    curves(0, model)
    method.run(
        model,
        paired_batches(
            batches(common.encode_skills(forget, tokenizer), batch_size=spec.batch_size, seed=spec.seed, pad_id=pad),
            batches(common.encode_skills(retain, tokenizer), batch_size=spec.batch_size, seed=spec.seed + 7, pad_id=pad)
            if method.needs_retain else None,
        ),
        steps=spec.steps, lr=spec.lr, seed=spec.seed, checkpoint_every=spec.eval_every, on_checkpoint=curves,
    )
    client().set_terminated(run.info.run_id)
    start = curves.history[0][1]
    chosen = choose_boundary(curves, spec)
    at = dict(curves.history)[chosen] if chosen is not None else curves.history[-1][1]
    row = {
        "boundary_step": chosen,
        "trainable_params": trainable,
        "start": {n: m.value for n, m in start.items()},
        "at": {n: {"value": m.value, "ci_high": m.ci_high} for n, m in at.items()},
        "curve": [(step, {n: round(m.value, 3) for n, m in ms.items()}) for step, ms in curves.history],
    }
    if chosen is not None:
        set_peft_model_state_dict(model, curves.adapters[chosen], adapter_name=active_adapter(model))
        model.eval()
        check = relearning_check(model, tokenizer, forget[spec.skill], start=start[spec.skill].value, budget=relearn_budget(spec))
        row["relearning"] = check.numbers
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--eval-problems", type=int, default=64)
    parser.add_argument("--k", type=int, default=3, help="heads the localized adapter may change")
    parser.add_argument("--map-method", default="ablation", choices=["ablation", "compressed"])
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--maps", default=None, help="reuse maps: the --json output of `boundary localize` for cobol on the base")
    parser.add_argument("--targets", default="all,localized", help="which runs, comma-separated (to run them in parallel)")
    args = parser.parse_args()

    from kernel_lifecycle.boundary import localize as loc
    from kernel_lifecycle.boundary.skills import skills_named
    from kernel_lifecycle.jobs.config import DownskillConfig, Thresholds
    from kernel_lifecycle.demo.base_builder import build_demo_base
    from kernel_lifecycle.models.loading import load_base

    # the quickstart policy's downskill plan and thresholds
    spec = DownskillConfig(
        kernel="bench", skill="cobol", retain=["python", "sql"], method="npo", method_options={"beta": 0.1, "retain_weight": 1.0},
        steps=args.steps, lr=2e-3, rank=8, batch_size=8, eval_every=args.eval_every, eval_problems=args.eval_problems,
        thresholds=Thresholds(floors={"python": 0.30, "sql": 0.20}, ceilings={"cobol": 0.05}, tolerance={"python": 0.10, "sql": 0.10}),
    )
    base = build_demo_base()
    model, tokenizer = load_base(str(base.path))
    started = time.perf_counter()
    if args.maps:
        with open(args.maps, encoding="utf-8") as fh:
            saved = json.load(fh)
        maps = {m["skill"]: loc.SkillMap.from_dict(m) for m in (saved["map"], *saved["others"].values())}
    else:
        maps = loc.map_skills(model, tokenizer, skills_named(["cobol", "python", "sql"]), method=args.map_method, k=args.k)
    map_seconds = time.perf_counter() - started
    placement = loc.lora_targets(model, maps["cobol"], [maps["python"], maps["sql"]], k=args.k)
    print(f"maps ({args.map_method}, 3 skills): {map_seconds:.1f}s; placement: {json.dumps(placement.describe())}", flush=True)
    for name, m in maps.items():
        print(f"  {name}: top {m.top_heads()} together {m.topk_ablation['change']:+.3f}, "
              f"random {args.k} mean {m.random_ablation['mean']:+.3f} min {m.random_ablation['min']:+.3f}", flush=True)
    del model

    rows = {}
    for target, kwargs in (("all", None), ("localized", placement.attach_kwargs())):
        if target not in args.targets.split(","):
            continue
        rows[target] = downskill_once(str(base.path), spec, kwargs, f"{target}-k{args.k}")
        print(f"{target}: {json.dumps(rows[target])}", flush=True)

    print()
    header = ["target", "trainable", "boundary step", "cobol upper bound", "python drop", "sql drop", f"cobol after {spec.relearn_steps} relearn steps", "seconds"]
    print(" | ".join(header))
    for target, r in rows.items():
        at, start = r["at"], r["start"]
        relearn = r.get("relearning", {}).get("after_relearning")
        print(" | ".join(str(c) for c in [
            target, r["trainable_params"], r["boundary_step"] if r["boundary_step"] is not None else f"none in {spec.steps}",
            f"{at['cobol']['ci_high']:.3f}", f"{start['python'] - at['python']['value']:+.3f}", f"{start['sql'] - at['sql']['value']:+.3f}",
            "-" if relearn is None else f"{relearn:.3f} (start {start['cobol']:.3f})", r["seconds"],
        ]))
    if {"all", "localized"} <= set(rows):
        a, b = rows["all"], rows["localized"]
        if a["boundary_step"] and b["boundary_step"]:
            print(f"steps to boundary, localized / all: {b['boundary_step'] / a['boundary_step']:.2f}")
        print(f"trainable parameters, localized / all: {b['trainable_params'] / a['trainable_params']:.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"placement": placement.describe(), "maps": {n: m.as_dict() for n, m in maps.items()}, "runs": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
