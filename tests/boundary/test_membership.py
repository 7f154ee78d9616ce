"""The membership signal: Min-K% against a hand-computed value, and its AUC on a tiny model that
was trained on the member probes and not on the others."""

from __future__ import annotations

import copy
import json
import math

import pytest

from kernel_lifecycle.boundary.membership import membership_auc, membership_check, min_k_score, solution_logprobs
from kernel_lifecycle.boundary.report import Reference
from tests.factories import make_tiny_base, write_skill


def test_min_k_is_the_mean_of_the_least_likely_tokens() -> None:
    lp = [-0.1, -2.0, -0.5, -3.0, -0.2]
    assert min_k_score(lp, 0.2) == -3.0  # ceil(0.2 * 5) = 1 token
    assert min_k_score(lp, 0.4) == -2.5  # the two lowest: (-3 - 2) / 2
    assert min_k_score(lp, 1.0) == pytest.approx(sum(lp) / 5)
    assert min_k_score([-1.0], 0.01) == -1.0  # at least one token
    with pytest.raises(ValueError, match="no solution tokens"):
        min_k_score([], 0.2)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    import torch

    from kernel_lifecycle.boundary.skills import demo_skills
    from kernel_lifecycle.models.loading import load_base

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("membership")
    # members (train) and non-members (test) of one shape, different constants
    probes = [{"prompt": f"-- rows above {i}\n", "canonical_solution": f"SELECT a FROM t WHERE a > {7 * i + 3};", "test": "{}"}
              for i in range(8)]
    write_skill(root / "skills", "sq", "sql_exec", "pass_rate", probes)
    test_file = root / "skills" / "sq" / "test.jsonl"  # the non-members: other constants
    lines = [json.loads(line) for line in test_file.read_text().splitlines()]
    test_file.write_text("".join(json.dumps({**p, "canonical_solution": f"SELECT a FROM t WHERE a > {11 * i + 90};"}) + "\n"
                                 for i, p in enumerate(lines)))
    skill = demo_skills(root / "skills")["sq"]
    model, tokenizer = load_base(str(make_tiny_base(root / "base", hidden=32, layers=2)))
    return model, tokenizer, skill


def test_solution_logprobs_score_only_the_solution_tokens(world) -> None:
    from kernel_lifecycle.boundary import prompts
    from kernel_lifecycle.training.data import IGNORE_INDEX, encode_probes

    model, tokenizer, skill = world
    (example,) = encode_probes(skill.probes("train")[:1], tokenizer, **prompts.answer_kind(skill))
    lp = solution_logprobs(model, example)
    assert len(lp) == sum(1 for t in example.labels[1:] if t != IGNORE_INDEX) and all(v <= 0.0 for v in lp)
    assert all(math.isfinite(v) for v in lp)


def test_training_on_the_members_raises_the_auc_over_an_untrained_reference(world) -> None:
    import torch

    from kernel_lifecycle.boundary import prompts
    from kernel_lifecycle.training.data import batches, encode_probes, pad_id_of
    from kernel_lifecycle.training.loop import train
    from kernel_lifecycle.training.losses import ce_loss

    model, tokenizer, skill = world
    reference = copy.deepcopy(model)
    trained = copy.deepcopy(model)
    data = encode_probes(skill.probes("train"), tokenizer, **prompts.answer_kind(skill))
    torch.manual_seed(0)
    train(trained, batches(data, batch_size=8, seed=0, pad_id=pad_id_of(tokenizer)), loss_fn=ce_loss, steps=60, lr=0.01, seed=0)
    auc = membership_auc(trained, tokenizer, skill, probes=8, k=0.2)
    assert auc == 1.0  # memorised: every member scores above every non-member
    ref = Reference(kind="base", name="untrained", why="never saw the members")
    check = membership_check(trained, tokenizer, skill, reference=ref, reference_model=reference, probes=8, k=0.2)
    assert check.passed and "(reported, not gated)" in check.detail  # no max_gap: report only
    assert check.numbers["auc"] == 1.0 and check.numbers["gap"] == 1.0 - check.numbers["auc_reference"]
    gated = membership_check(trained, tokenizer, skill, reference=ref, reference_model=reference, probes=8, k=0.2, max_gap=0.1)
    assert not gated.passed and check.numbers["auc_reference"] < 0.9
