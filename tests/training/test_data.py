from __future__ import annotations

import itertools

import pytest
import torch

from kernel_lifecycle.boundary.skills import Probe
from kernel_lifecycle.errors import JobError
from kernel_lifecycle.training.data import (
    IGNORE_INDEX,
    batches,
    encode_probes,
    pad_id_of,
    paired_batches,
    replay_batches,
)
from tests.tiny import toy_probes, toy_tokenizer


@pytest.fixture(scope="module")
def tok():
    return toy_tokenizer()


def test_labels_cover_exactly_the_solution_and_eos(tok):
    probe = toy_probes("python", 1)[0]
    (example,) = encode_probes([probe], tok)
    n_prompt = len(tok(probe.prompt)["input_ids"])
    assert example.labels[:n_prompt] == (IGNORE_INDEX,) * n_prompt
    assert example.labels[n_prompt:] == example.input_ids[n_prompt:]
    assert example.input_ids[-1] == tok.eos_token_id
    assert tok.decode(example.input_ids[n_prompt:-1]) == probe.canonical_solution


def test_padding_is_masked_and_not_counted(tok):
    examples = encode_probes(toy_probes("python", 3) + toy_probes("cobol", 3), tok)
    batch = next(batches(examples, batch_size=6, seed=0, pad_id=pad_id_of(tok)))
    pad = batch.attention_mask == 0
    assert pad.any(), "examples differ in length, so some rows must be padded"
    assert (batch.labels[pad] == IGNORE_INDEX).all()
    assert (batch.input_ids[pad] == tok.pad_token_id).all()
    assert batch.tokens == int(batch.attention_mask.sum())


def test_shuffling_is_deterministic_per_seed_and_batches_are_full(tok):
    examples = encode_probes(toy_probes("python", 5), tok)

    def first(seed: int, n: int = 4) -> list[torch.Tensor]:
        stream = batches(examples, batch_size=3, seed=seed, pad_id=0)
        return [b.input_ids for b in itertools.islice(stream, n)]

    a, b, c = first(1), first(1), first(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, c))
    # 4 batches of 3 from 5 examples: wraps into later epochs, every batch stays full.
    assert [len(x) for x in a] == [3, 3, 3, 3]


def test_replay_batches_hold_the_asked_share(tok):
    new = encode_probes(toy_probes("python", 6), tok)
    old = encode_probes(toy_probes("cobol", 6), tok)
    cobol_marker = tok("       IDENTIFICATION")["input_ids"][0]
    for batch in itertools.islice(
        replay_batches(new, old, batch_size=8, replay_ratio=0.25, seed=0, pad_id=0), 3
    ):
        replayed = int((batch.input_ids[:, 0] == cobol_marker).sum())
        assert replayed == 2
    no_replay = next(replay_batches(new, [], batch_size=4, replay_ratio=0.5, seed=0, pad_id=0))
    assert len(no_replay) == 4


def test_pairs_are_lockstep_and_count_both_sides(tok):
    f = batches(encode_probes(toy_probes("cobol", 4), tok), batch_size=2, seed=0, pad_id=0)
    r = batches(encode_probes(toy_probes("python", 4), tok), batch_size=2, seed=0, pad_id=0)
    pair = next(paired_batches(f, r))
    assert pair.tokens == pair.forget.tokens + pair.retain.tokens
    only = next(paired_batches(f, None))
    assert only.retain is None and only.tokens == only.forget.tokens


def test_long_examples_keep_solution_tokens(tok):
    probe = Probe(task_id="t", prompt="x = 1\n" * 200, canonical_solution="    return a + b\n")
    (example,) = encode_probes([probe], tok, max_length=32)
    assert len(example.input_ids) == 32
    assert example.input_ids[-1] == tok.eos_token_id
    assert sum(label != IGNORE_INDEX for label in example.labels) >= 5


def test_empty_data_is_refused_before_training(tok):
    with pytest.raises(JobError, match="has no training examples"):
        encode_probes([], tok, what="skill 'cobol' train split")
    with pytest.raises(JobError, match="has no training examples"):
        next(batches([], batch_size=2, seed=0, pad_id=0))
    with pytest.raises(JobError, match="has no training examples"):
        next(replay_batches([], [], batch_size=2, replay_ratio=0.0, seed=0, pad_id=0))
