"""The 2x-budget re-score regenerates only truncated greedy generations: same result as a full run."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_lifecycle.boundary.evaluate import _run
from kernel_lifecycle.boundary.skills import demo_skills
from kernel_lifecycle.models.loading import load_base
from tests.factories import make_tiny_base, write_tiny_skills


def test_reused_rescore_equals_a_full_rescore(tmp_path: Path) -> None:
    import torch

    skills = demo_skills(write_tiny_skills(tmp_path / "skills", n=8))
    model, tokenizer = load_base(str(make_tiny_base(tmp_path / "base", hidden=32, layers=2)))
    # A random model never says eos; a louder eos row makes some prompts stop early and not
    # others, so both branches of the reuse (kept and regenerated) are exercised.
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] *= 2.0
    skill = skills["py"]
    first = _run(model, tokenizer, skill, "dev", max_problems=None, max_new_tokens=3)
    truncated = [any(g.truncated for g in gens) for gens in first.generations]
    if all(truncated) or not any(truncated):
        pytest.fail(f"the test model needs a mix of finished and truncated generations, got {truncated}")

    reused = _run(model, tokenizer, skill, "dev", max_problems=None, max_new_tokens=6, reuse=first)
    full = _run(model, tokenizer, skill, "dev", max_problems=None, max_new_tokens=6)
    assert [g.text for gens in reused.generations for g in gens] == [g.text for gens in full.generations for g in gens]
    assert reused.metrics == full.metrics
    # finished generations kept their verdicts (the very objects), truncated ones were judged again
    for i, was_truncated in enumerate(truncated):
        assert (reused.verdicts[i] is first.verdicts[i]) is (not was_truncated)
