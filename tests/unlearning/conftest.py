"""A tiny base that already knows both toy skills, so unlearning has something to remove."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest

from kernel_lifecycle.training.data import Example, batches, encode_probes, pad_id_of, replay_batches
from kernel_lifecycle.training.loop import train
from kernel_lifecycle.training.losses import ce_loss
from tests.tiny import tiny_llama, toy_probes, toy_tokenizer


@dataclass
class World:
    tokenizer: object
    base: object  # a plain LlamaForCausalLM trained on both skills; deep-copy before use
    forget: list[Example]  # the "cobol" skill to retire
    retain: list[Example]  # the "python" skill to keep
    pad: int

    def fresh_base(self):
        return copy.deepcopy(self.base)

    def pairs(self, seed: int = 0):
        from kernel_lifecycle.training.data import paired_batches

        return paired_batches(
            batches(self.forget, batch_size=4, seed=seed, pad_id=self.pad),
            batches(self.retain, batch_size=4, seed=seed + 1, pad_id=self.pad),
        )


@pytest.fixture(scope="session")
def world() -> World:
    tok = toy_tokenizer()
    pad = pad_id_of(tok)
    retain = encode_probes(toy_probes("python", 8), tok)
    forget = encode_probes(toy_probes("cobol", 8), tok)
    base = tiny_llama(tok, seed=0)
    # Full fine-tune (no adapter yet) on both skills: the "kernel" before the downskill.
    train(
        base,
        replay_batches(retain, forget, batch_size=8, replay_ratio=0.5, seed=0, pad_id=pad),
        loss_fn=ce_loss,
        steps=60,
        lr=3e-3,
        seed=0,
    )
    base.eval()
    return World(tok, base, forget, retain, pad)
