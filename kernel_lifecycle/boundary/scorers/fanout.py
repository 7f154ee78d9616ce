"""Scoring fan-out: a skill's samples scored in batches, each batch a Ray task running the same
sandboxed scorer, the verdicts merged back in the samples' order.

``scorer_for(name)`` is what callers use: the scorer itself under ``KL_EXECUTOR=local``, a
:class:`FanOutScorer` under ``ray``. Both have ``score`` and ``version``; a worker whose scorer
version differs from the driver's (another cobc, another sandbox mode) is refused, so verdicts
scored through Ray are the verdicts local scoring gives.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from kernel_lifecycle.boundary.scorers import Sample, Scorer, Verdict, get_scorer
from kernel_lifecycle.errors import ConfigurationError
from kernel_lifecycle.executor import connect, worker_env
from kernel_lifecycle.settings import get_settings

# a batch is worth a task's start (a few ms once its worker is warm) but small enough that
# every CPU of the cluster gets some: about two batches per CPU, never below this
MIN_BATCH = 16


def scorer_for(name: str, executor: str | None = None):  # noqa: ANN201 - Scorer | FanOutScorer
    if (executor or get_settings().executor) == "ray":
        return FanOutScorer(name)
    return get_scorer(name)


@lru_cache(maxsize=None)
def _worker_scorer(name: str) -> Scorer:
    """One scorer per name in a Ray worker process: a positive control runs once, not per batch."""
    return get_scorer(name)


def _score_batch(name: str, samples: list[dict[str, Any]], workers: int, timeout: float | None) -> tuple[str, list[dict[str, Any]]]:
    get_settings.cache_clear()  # this task's runtime_env decides KL_SANDBOX
    judge = _worker_scorer(name)
    verdicts = judge.score([Sample.model_validate(s) for s in samples], workers=workers, timeout=timeout)
    return judge.version(), [v.model_dump() for v in verdicts]


def cluster_cpus(ray) -> int:  # noqa: ANN001
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class FanOutScorer:
    """``name``'s scorer, run in batches across Ray workers (``executor.connect()``'s cluster)."""

    def __init__(self, name: str, batch_size: int | None = None) -> None:
        self.name = name
        self.local = get_scorer(name)  # unknown name: NotFoundError here, not in a worker
        self.batch_size = batch_size

    def version(self) -> str:
        return self.local.version()

    def size_for(self, n: int) -> int:
        """Samples per batch for ``n`` samples: the given size, or about two batches per CPU."""
        return self.batch_size or max(MIN_BATCH, math.ceil(n / (2 * cluster_cpus(connect()))))

    def score(self, samples: list[Sample], *, workers: int = 2, timeout: float | None = None) -> list[Verdict]:
        """Verdicts in the samples' order; each task declares ``workers`` CPUs and runs that
        many sandboxed programs at a time, as local scoring with ``workers`` does."""
        if not samples:
            return []
        ray = connect()
        task = ray.remote(_score_batch).options(
            # more CPUs than the cluster has would leave the task waiting forever
            num_cpus=min(workers, cluster_cpus(ray)), max_retries=0, runtime_env={"env_vars": worker_env()}, name=f"kl:score:{self.name}",
        )
        refs = [
            task.remote(self.name, [s.model_dump() for s in batch], workers, timeout)
            for batch in batches(samples, self.size_for(len(samples)))
        ]
        expected = self.version()
        verdicts: list[Verdict] = []
        for version, batch in ray.get(refs):
            if version != expected:
                raise ConfigurationError(
                    f"a Ray worker's {self.name} scorer is {version!r}, this machine's is {expected!r}: "
                    "verdicts would not compare; give the cluster's workers the same tools and KL_SANDBOX"
                )
            verdicts += [Verdict.model_validate(v) for v in batch]
        return verdicts
