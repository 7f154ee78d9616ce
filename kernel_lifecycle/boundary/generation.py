"""Generation for evaluation: batched, KV-cached, seeded, and honest about truncation.

Each generation records whether it hit the token budget without an end-of-sequence token
(``truncated``): a metric that moves when the budget moves is measuring the budget. It also
records the mean per-token entropy of the model's distribution over what it generated, the
signal that rises where a kernel is unsure (at a skill's boundary).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int
    truncated: bool
    mean_entropy: float


def generate(
    model,
    tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int,
    n_samples: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
) -> list[list[Generation]]:  # noqa: ANN001
    """``n_samples`` generations per prompt, in prompt order. Same seed, same outputs."""
    import torch

    if not prompts:
        return []
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    # Sorting by length keeps padding (wasted compute) low; results go back in prompt order.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[list[Generation] | None] = [None] * len(prompts)
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
    device = next(model.parameters()).device
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            encoded = tokenizer([prompts[i] for i in chunk], return_tensors="pt", padding=True).to(device)
            sampling = temperature > 0
            torch.manual_seed(seed + start)
            with torch.inference_mode():
                out = model.generate(
                    **encoded,
                    max_new_tokens=max_new_tokens,
                    do_sample=sampling,
                    temperature=temperature if sampling else None,
                    top_p=top_p if sampling else None,
                    top_k=None,
                    num_return_sequences=n_samples,
                    pad_token_id=pad,
                    eos_token_id=eos,
                    use_cache=True,
                    output_logits=True,
                    return_dict_in_generate=True,
                )
            new_tokens = out.sequences[:, encoded["input_ids"].shape[1] :]
            logits = torch.stack(out.logits, dim=1).float()  # (rows, steps, vocab)
            if sampling:
                logits = logits / temperature
            logp = torch.log_softmax(logits, dim=-1)
            entropy = -(logp.exp() * logp).sum(-1)  # (rows, steps)
            for row in range(new_tokens.shape[0]):
                tokens = new_tokens[row].tolist()
                ended = eos in tokens
                length = tokens.index(eos) + 1 if ended else len(tokens)
                text = tokenizer.decode(tokens[: length - 1 if ended else length], skip_special_tokens=True)
                steps = min(length, entropy.shape[1])
                mean_entropy = float(entropy[row, :steps].mean()) if steps else 0.0
                gen = Generation(text=text, n_tokens=length, truncated=not ended, mean_entropy=mean_entropy)
                prompt_index = chunk[row // n_samples]
                if results[prompt_index] is None:
                    results[prompt_index] = []
                results[prompt_index].append(gen)
    finally:
        tokenizer.padding_side = previous_side
    return [r or [] for r in results]
