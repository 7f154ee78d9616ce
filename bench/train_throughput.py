"""Training throughput: the project's step loop against a plain transformers + peft loop.

Both train the same LoRA-wrapped Llama on the same pre-built batches, in one process, in
alternating order (ours first on even repeats, plain first on odd ones) after a warmup of each,
and the median tokens/s over the repeats is compared. Two kinds of step:

  upskill   : CE on solution tokens                (ours: training.loop.train + losses.ce_loss)
  downskill : NPO forget loss + retain NLL on LoRA (ours: unlearning.get_method("npo").run)

The plain loop is written the obvious way: ``model(..., labels=...).loss`` for CE, and for NPO
log_softmax + gather over the logits with the reference under ``disable_adapter()``.
Tokens are non-padding input tokens (forget + retain for NPO). Target: ours >= 0.9x plain.

    python3 bench/train_throughput.py                  # a tiny Llama: ~1-2 minutes on 2 CPU cores
    python3 bench/train_throughput.py --base smollm2   # a real pretrained model (any base spec), its
                                                       # prompt format, the demo skills' probes
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from kernel_lifecycle.training.data import Batch, Pair, batches, encode_probes, pad_id_of, paired_batches
from kernel_lifecycle.training.lora import attach_lora
from kernel_lifecycle.training.loop import train
from kernel_lifecycle.training.losses import ce_loss
from kernel_lifecycle.unlearning import get_method

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test helpers' tiny models live in tests/
from tests.tiny import tiny_llama, toy_probes, toy_tokenizer  # noqa: E402

LR = 1e-4  # small: the bench measures speed, it should not drive the adapter anywhere odd
BETA = 0.1


# --- the plain loops, written the way one would without this project ----------------------


def plain_upskill(model, data: list[Batch]) -> tuple[int, float]:
    start = time.perf_counter()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR)
    model.train()
    tokens = 0
    for b in data:
        out = model(input_ids=b.input_ids, attention_mask=b.attention_mask, labels=b.labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        tokens += int(b.attention_mask.sum())
    return tokens, time.perf_counter() - start


def _plain_seq_logp(model, b: Batch) -> torch.Tensor:
    logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits[:, :-1]
    labels = b.labels[:, 1:]
    mask = labels != -100
    logp = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * mask).sum(-1)


def plain_npo(model, data: list[Pair]) -> tuple[int, float]:
    start = time.perf_counter()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR)
    model.train()
    tokens = 0
    for forget, retain in data:
        with torch.no_grad(), model.disable_adapter():
            ref = _plain_seq_logp(model, forget)
        logp = _plain_seq_logp(model, forget)
        forget_loss = -(2 / BETA) * F.logsigmoid(-BETA * (logp - ref)).mean()
        retain_loss = model(
            input_ids=retain.input_ids, attention_mask=retain.attention_mask, labels=retain.labels
        ).loss
        (forget_loss + retain_loss).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        tokens += int(forget.attention_mask.sum()) + int(retain.attention_mask.sum())
    return tokens, time.perf_counter() - start


# --- the project's loop --------------------------------------------------------------------


def ours_upskill(model, data: list[Batch]) -> tuple[int, float]:
    start = time.perf_counter()
    result = train(model, data, loss_fn=ce_loss, steps=len(data), lr=LR, seed=0)
    return result.tokens, time.perf_counter() - start


def ours_npo(model, data: list[Pair]) -> tuple[int, float]:
    start = time.perf_counter()
    npo = get_method("npo", beta=BETA, retain_weight=1.0)
    result = npo.run(model, data, steps=len(data), lr=LR, seed=0)
    return result.tokens, time.perf_counter() - start


# --- measurement -----------------------------------------------------------------------------


def measure(name: str, model, data: list, ours, plain, repeats: int) -> tuple[float, float]:
    ours(model, data[:2])  # warmup: allocator, kernels, autograd graph caches
    plain(model, data[:2])
    rates: dict[str, list[float]] = {"ours": [], "plain": []}
    for r in range(repeats):
        order = [("ours", ours), ("plain", plain)]
        if r % 2:
            order.reverse()  # alternate who goes first, so drift and heat hit both alike
        for label, fn in order:
            tokens, seconds = fn(model, data)
            rates[label].append(tokens / seconds)
    o, p = statistics.median(rates["ours"]), statistics.median(rates["plain"])
    print(
        f"{name:<10} ours {o:>9.0f} tok/s   plain {p:>9.0f} tok/s   ratio {o / p:5.3f}   "
        f"(min/max ours {min(rates['ours']):.0f}/{max(rates['ours']):.0f}, "
        f"plain {min(rates['plain']):.0f}/{max(rates['plain']):.0f})"
    )
    return o, p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--base", default=None, help="a base spec (smollm2, a directory, ...) instead of the tiny Llama")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.base is None:
        tok = toy_tokenizer()
        forget = encode_probes(toy_probes("cobol", 16), tok)
        retain = encode_probes(toy_probes("python", 16), tok)
        model = tiny_llama(tok, layers=args.layers, hidden=args.hidden, heads=4, vocab_size=args.vocab, seed=0)
    else:
        from kernel_lifecycle.boundary.prompts import answer_kind
        from kernel_lifecycle.boundary.skills import skills_named
        from kernel_lifecycle.models.loading import load_base

        model, tok = load_base(args.base)  # KL_DEVICE decides where (bf16 on CUDA)
        model.train()
        skills = skills_named(["cobol", "python"])  # the demo skills, in the base's prompt format
        forget = encode_probes(skills["cobol"].probes("train")[:16], tok, max_length=256, **answer_kind("cobol_compile"))
        retain = encode_probes(skills["python"].probes("train")[:16], tok, max_length=256, **answer_kind("python_tests"))
        args.layers, args.hidden, args.vocab = model.config.num_hidden_layers, model.config.hidden_size, model.config.vocab_size
    pad = pad_id_of(tok)
    model = attach_lora(model, seed=0)

    # The same pre-built batches for both loops, so only the loop itself differs.
    up = [b for b, _ in zip(batches(retain, batch_size=args.batch_size, seed=0, pad_id=pad), range(args.steps))]
    pairs = paired_batches(
        batches(forget, batch_size=args.batch_size, seed=0, pad_id=pad),
        batches(retain, batch_size=args.batch_size, seed=1, pad_id=pad),
    )
    down = [p for p, _ in zip(pairs, range(args.steps))]

    n_params = sum(p.numel() for p in model.parameters())
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(
        f"llama {args.layers}x{args.hidden}, vocab {args.vocab}, {n_params / 1e6:.1f}M params "
        f"({n_lora / 1e3:.0f}k LoRA), batch {args.batch_size} x ~{up[0].input_ids.shape[1]} tokens, "
        f"{args.steps} steps x {args.repeats} repeats, torch threads {torch.get_num_threads()}"
    )
    ratios = []
    for name, data, ours, plain in (
        ("upskill", up, ours_upskill, plain_upskill),
        ("downskill", down, ours_npo, plain_npo),
    ):
        o, p = measure(name, model, data, ours, plain, args.repeats)
        ratios.append(o / p)
    verdict = "meets" if min(ratios) >= 0.9 else "MISSES"
    print(f"worst ratio {min(ratios):.3f}: {verdict} the target of 0.9x the plain loop")


if __name__ == "__main__":
    main()
