"""Policy test helpers: a small valid policy, a fixed 'today', and known skills injected so the
tests do not depend on which demo skills exist (one test checks the real demo skills)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from kernel_lifecycle.policy.schema import PolicyContext

TODAY = date(2026, 11, 23)
SKILLS = {"python": "python_tests", "sql": "sql_exec", "cobol": "cobol_compile"}

VALID = """\
kernel: tiny-kernel
description: a test policy
owners: [ml-platform]
skills:
  retained:
    - name: python
      floor: 0.3
      tolerance: 0.1
    - name: sql
      floor: 0.2
  retired:
    - name: cobol
      ceiling: 0.05
      sunset: 2027-01-31
plans:
  upskill:
    skill: sql
    hyperparameters: {steps: 40, lr: 1.0e-3, rank: 4, alpha: 8, batch_size: 4}
    replay: {skills: [python], ratio: 0.25}
  downskill:
    skill: cobol
    method: npo
    hyperparameters: {steps: 30, lr: 2.0e-3, eval_every: 10, rank: 4}
    options: {beta: 0.1, retain_weight: 1.0}
    retain: [python]
triggers:
  - kind: manual
    plan: downskill
  - kind: sunset
    skill: cobol
    plan: downskill
  - kind: cron
    cron: "30 2 * * mon-fri"
    timezone: Europe/Berlin
    plan: downskill
    retry: {max_retries: 2, backoff_seconds: 30}
gate:
  tolerance: 0.05
  alpha: 0.05
  min_probes: 30
  required_checks: [truncation, generalization, scorer_parity, contamination, relearning]
  harness: {max_new_tokens: 160, n_samples: 1, k: 1, split: test}
approvals:
  approvers: [alice, bob]
  required: 1
  auto_promote: false
"""


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based number of the line holding the nth occurrence of ``needle``."""
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == nth:
                return number
    raise AssertionError(f"{needle!r} not in text")


@pytest.fixture
def ctx() -> PolicyContext:
    return PolicyContext.default(today=TODAY, skills=SKILLS)


@pytest.fixture
def write(tmp_path: Path):
    def _write(text: str, name: str = "policy.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write
