"""Does the demo's v3 verdict hold across torch threads and training seeds (issue 21's "done when")?

One run: the quickstart from the shipped demo base in a fresh KL_HOME, every job trained with
``--seed``, torch on ``--threads`` threads; then v3's gate decision again (the quickstart already
recorded it) and the forgetting checks of its report, written as JSON to ``--out`` and
summarised on stdout. Compare the JSON files of several runs: the verdict, the failing rules and
the relearning comparison (both curves, areas, bound, tolerance).

    .venv/bin/python bench/relearning_determinism.py --threads 1 --seed 0 --home /tmp/qs-1-0 --out runs/1-0.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--home", type=Path, required=True, help="a fresh KL_HOME for this run")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ["KL_HOME"] = str(args.home)

    import torch

    torch.set_num_threads(args.threads)
    from kernel_lifecycle import promotion
    from kernel_lifecycle.boundary.tracking import load_version_report
    from kernel_lifecycle.demo import quickstart
    from kernel_lifecycle.registry import client as registry
    from kernel_lifecycle.settings import get_settings

    get_settings.cache_clear()
    started = time.monotonic()
    result = quickstart.run(seed=args.seed)
    seconds = time.monotonic() - started
    v3 = result.versions["downskill"]
    gate = promotion.run_gate(quickstart.KERNEL, v3)
    report = load_version_report(registry.get_version(quickstart.KERNEL, v3))
    checks = {c.name: c.model_dump(mode="json") for c in report.checks}
    out = {
        "threads": args.threads, "seed": args.seed, "seconds": round(seconds, 1), "load_1min": os.getloadavg()[0],
        "v3": v3, "gate": gate["status"], "promoted": result.promoted,
        "failed_rules": sorted(f"{r['rule']}:{r.get('skill') or ''}" for r in gate["reasons"] if not r["passed"]),
        "failures": [r["message"] for r in gate["reasons"] if not r["passed"]],
        "skills": {name: {"test": m.value, "ci_high": m.ci_high, "truncated": m.truncation_rate} for name, m in report.skills.items()},
        "checks": {name: {k: checks[name][k] for k in ("passed", "detail", "numbers", "curve", "reference", "reference_curve")}
                   for name in checks},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2), encoding="utf-8")
    relearning = checks.get("relearning", {})
    print(f"threads {args.threads} seed {args.seed}: v3 gate {gate['status']} in {seconds:.0f} s; failed: {', '.join(out['failed_rules']) or 'none'}")
    print(f"  relearning candidate {relearning.get('curve')} reference {relearning.get('reference_curve')} passed {relearning.get('passed')}")


if __name__ == "__main__":
    main()
