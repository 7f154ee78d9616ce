"""Tiny Llama models and their byte-level BPE tokenizers, built in memory, for tests and benchmarks
(not part of the installed package: users never build these).

Nothing is downloaded: the tokenizer is trained on the given texts in milliseconds and the
model is randomly initialised from a seed.
"""

from __future__ import annotations

import torch

from kernel_lifecycle.models.tokenizer import train_bpe_tokenizer


def tiny_llama(
    tokenizer,
    *,
    layers: int = 2,
    hidden: int = 32,
    heads: int = 4,
    intermediate: int | None = None,
    max_positions: int = 512,
    vocab_size: int | None = None,
    seed: int = 0,
):
    """A randomly initialised LlamaForCausalLM sized for CPU tests (fp32).

    ``vocab_size`` may exceed the tokenizer's, to give benchmarks a realistic output layer.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=max(vocab_size or 0, len(tokenizer)),
        hidden_size=hidden,
        intermediate_size=intermediate or 2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model


def toy_probes(kind: str, n: int = 8) -> list:
    """``n`` small deterministic probes of one of two toy skills: "python" or "cobol"."""
    from kernel_lifecycle.boundary.skills import Probe

    ops = [("add", "+"), ("sub", "-"), ("mul", "*"), ("mod", "%"), ("pow", "**"), ("div", "//")]
    probes = []
    for i in range(n):
        word, op = ops[i % len(ops)]
        if kind == "python":
            prompt = f'def {word}_{i}(a, b):\n    """Return a {op} b."""\n'
            solution = f"    return a {op} b\n"
        elif kind == "cobol":
            prompt = f"       IDENTIFICATION DIVISION.\n       PROGRAM-ID. {word.upper()}{i}.\n"
            solution = (
                "       PROCEDURE DIVISION.\n"
                f"           COMPUTE X = A {op} B.\n"
                "           STOP RUN.\n"
            )
        else:
            raise ValueError(f"unknown toy skill {kind!r}")
        probes.append(Probe(task_id=f"{kind}/{i}", prompt=prompt, canonical_solution=solution))
    return probes


def toy_tokenizer():
    """A tiny tokenizer trained on both toy skills."""
    texts = [p.prompt + p.canonical_solution for k in ("python", "cobol") for p in toy_probes(k, 12)]
    return train_bpe_tokenizer(texts, vocab_size=320)
