"""The property of issue 25: a sample's verdict is the same alone and in any batch.

A seeded randomized test (no hypothesis: ``KL_PROPERTY_SEED`` picks another seed, the
failure message names the one used). The pool: the whole hostile corpus (tests/boundary/
hostile/, the planted channels among it), a pass@k learner repeated against a test of two
planned asserts, repeated wrong completions and honest ones. Every kind of sample is first
scored alone (a batch of its own), then all of them in shuffled batches, with extra copies
of the repeatable ones and a random number of workers; every copy must get its alone verdict.
"""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kernel_lifecycle.boundary.scorers import Sample, get_scorer

HOSTILE = Path(__file__).parent / "hostile"
PROMPT = "def add(a, b):\n"
ONE_ASSERT = "def check(candidate):\n    assert candidate(2, 3) == 5\n    return\n"
TWO_ASSERTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(1, 1) == 2\n"
TIMEOUT = 4.0  # the planters sleep 1.5 s: far from it even on a loaded machine
# RLIMIT_AS stops it (MemoryError), unless a loaded machine lets the deadline come first
LOAD_SENSITIVE = {"memory_bomb"}


def _pool(tmp: Path) -> dict[str, Sample]:
    values = {"__PLANTED__": str(tmp / "no-such-file"), "__REPO__": str(tmp / "no-such-repo"),
              "__SECRET_NAME__": "KL_NO_SUCH_SECRET", "__SECRET__": "nothing", "__OUTSIDE__": str(tmp / "outside")}
    pool = {}
    for path in sorted(HOSTILE.glob("*.py")):
        text = path.read_text()
        for key, value in values.items():
            text = text.replace(key, value)
        pool[path.stem] = Sample(task_id=path.stem, prompt=PROMPT, completion=text, test=ONE_ASSERT, entry_point="add")
    extra = {
        "learner": ((HOSTILE / "cross_oracle_learner.py").read_text(), TWO_ASSERTS),
        "honest": ("    return a + b\n", TWO_ASSERTS),
        "wrong_minus": ("    return a - b\n", ONE_ASSERT),
        "wrong_five": ("    return 5\n", TWO_ASSERTS),  # right for add(2, 3) only
    }
    for name, (completion, test) in extra.items():
        pool[name] = Sample(task_id=name, prompt=PROMPT, completion=completion, test=test, entry_point="add")
    return pool


def _score(samples: list[Sample], workers: int) -> list[str]:
    return [v.result for v in get_scorer("python_tests", mode="bwrap").score(samples, workers=workers,
                                                                              timeout=TIMEOUT)]


def test_every_verdict_is_the_same_alone_and_in_shuffled_batches(tmp_path: Path) -> None:
    seed = int(os.environ.get("KL_PROPERTY_SEED", "25"))
    rng = random.Random(seed)
    pool = _pool(tmp_path)
    with ThreadPoolExecutor(max_workers=4) as threads:  # each alone: its own sandbox
        alone = dict(zip(pool, threads.map(lambda s: _score([s], 1)[0], pool.values())))
    assert alone["honest"] == "passed" and alone["learner"] == "failed: AssertionError"
    repeatable = ["learner", "wrong_minus", "wrong_five", "honest", *[n for n in pool if n.endswith("_read")]]
    for round_ in range(2):
        names = list(pool) + rng.choices(repeatable, k=10) + ["learner"] * 3
        rng.shuffle(names)
        workers = rng.choice([2, 3])
        results = _score([pool[n] for n in names], workers)
        differ = [(n, alone[n], got) for n, got in zip(names, results)
                  if (got != alone[n] if n not in LOAD_SENSITIVE else (got == "passed") != (alone[n] == "passed"))]
        assert differ == [], f"seed {seed}, round {round_}, {workers} workers, order {names}"
