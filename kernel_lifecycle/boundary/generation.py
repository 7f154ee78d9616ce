"""Generation for evaluation: batched, KV-cached, seeded, and honest about truncation.

Each generation records whether it hit the token budget without an end-of-sequence token or a
stop string (``truncated``): a metric that moves when the budget moves is measuring the budget.
It also records the mean per-token entropy of the model's distribution over what it generated,
the signal that rises where a kernel is unsure (at a skill's boundary).

Evaluation is most of what a job costs on a real model, so decoding is a loop of its own over
the model's forward (what ``model.generate`` runs, without its per-step machinery):

- a row leaves the batch as soon as it ends (end-of-sequence token, a stop string, or the
  budget): its rows of the KV cache are dropped, and the batch runs only as long as the rows it
  still holds, not as long as its longest one with the finished rows computed as padding;
- the entropy is taken step by step from that step's logits; the logits are never kept;
- rows are sorted by prompt length before batching (little left padding in the prefill), a
  prompt that occurs more than once under greedy decoding is decoded once, and the samples of one
  prompt share its prefill;
- greedy decoding gives the same tokens as ``model.generate`` on the same batch (tests compare
  them). Forward passes keep at least two rows: at one row the CPU matmul takes another kernel
  whose sums differ in the last bits, which could flip a near-tied argmax.

Sampling draws each row from its own generator, seeded from (``seed``, prompt index, sample
index): the same seed gives the same samples whatever the batch size or the other prompts.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Fewer rows than this in a forward pass take a different matmul kernel (a matrix-vector
# product): a finished row stays in the batch as a companion rather than letting it drop to one.
_MIN_ROWS = 2


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int  # generated tokens, up to and including the end-of-sequence token or the one that completed a stop string
    truncated: bool  # hit max_new_tokens without an end-of-sequence token or a stop string
    mean_entropy: float
    token_ids: tuple[int, ...] = field(default=(), repr=False)  # the n_tokens generated token ids


@dataclass
class _Row:
    prompt: int  # index of the first prompt with these token ids
    sample: int
    ids: list[int]
    tokens: list[int] = field(default_factory=list)
    entropy: float = 0.0
    done: bool = False
    generation: Generation | None = None


def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    n_samples: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    stop: Sequence[str | Callable[[str], int | None]] | None = None,
) -> list[list[Generation]]:
    """``n_samples`` generations per prompt, in prompt order. Same seed, same outputs.

    ``temperature`` 0 is greedy decoding; above it, sampling with nucleus ``top_p``.
    ``batch_size`` is the number of sequences decoded together. A row ends at the tokenizer's
    end-of-sequence token or as soon as its text contains one of the ``stop`` strings (its text
    is cut before the stop string); only a row that reached ``max_new_tokens`` without either
    is ``truncated``. Runs on the model's device.
    """
    stops = _check(max_new_tokens=max_new_tokens, n_samples=n_samples, temperature=temperature,
                   top_p=top_p, batch_size=batch_size, stop=stop)
    if not prompts:
        return []
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    encoded = tokenizer(list(prompts))["input_ids"]
    sampling = temperature > 0
    rows: list[_Row] = []
    if sampling:
        rows = [_Row(prompt=p, sample=s, ids=list(ids)) for p, ids in enumerate(encoded) for s in range(n_samples)]
    else:
        # Greedy decoding is deterministic: one row per distinct prompt, its generation copied.
        first: dict[tuple[int, ...], int] = {}
        for p, ids in enumerate(encoded):
            if tuple(ids) not in first:
                first[tuple(ids)] = p
                rows.append(_Row(prompt=p, sample=0, ids=list(ids)))
    # Sorted by length, a batch's prompts need little left padding (padding is wasted compute).
    rows.sort(key=lambda r: len(r.ids))
    decoder = _Decoder(model, tokenizer, eos=eos, pad=pad, max_new_tokens=max_new_tokens,
                       temperature=temperature, top_p=top_p, seed=seed, stops=stops)
    for start in range(0, len(rows), batch_size):
        decoder.run(rows[start : start + batch_size])
    by_prompt = {(r.prompt, r.sample): r.generation for r in rows}
    if sampling:
        return [[by_prompt[(p, s)] for s in range(n_samples)] for p in range(len(prompts))]  # type: ignore[misc]
    index = {tuple(r.ids): r.prompt for r in rows}
    return [[by_prompt[(index[tuple(ids)], 0)]] * n_samples for ids in encoded]  # type: ignore[list-item]


def _check(*, max_new_tokens: int, n_samples: int, temperature: float, top_p: float, batch_size: int,
           stop: Sequence[str | Callable[[str], int | None]] | None) -> tuple[str | Callable[[str], int | None], ...]:
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, not {max_new_tokens}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, not {n_samples}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if temperature < 0:
        raise ValueError(f"temperature must be 0 (greedy) or positive, not {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], not {top_p}")
    if isinstance(stop, str):
        raise TypeError("stop is a list of strings, not one string")
    stops = tuple(stop or ())
    if any(not callable(s) and (not isinstance(s, str) or not s) for s in stops):
        raise ValueError(f"stop strings must be non-empty strings (or functions of the text): {list(stops)!r}")
    return stops


def row_seed(seed: int, prompt: int, sample: int) -> int:
    """The generator seed of one sampled row: a function of the call's seed and the row alone."""
    digest = hashlib.sha256(f"{seed}/{prompt}/{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def stop_index(text: str, stops: Sequence[str | Callable[[str], int | None]]) -> int | None:
    """Where the earliest stop starts in ``text`` (None if none occurs). A stop is a string, or a
    function of the generated text giving where it ends (a prompt format's end of an answer)."""
    found = [i for i in (s(text) if callable(s) else text.find(s) for s in stops) if i is not None and i >= 0]
    return min(found) if found else None


class _Decoder:
    """Decodes batches of rows with one model and one set of decoding options."""

    def __init__(self, model, tokenizer, *, eos: int, pad: int, max_new_tokens: int, temperature: float,
                 top_p: float, seed: int, stops: tuple[str | Callable[[str], int | None], ...]) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.eos, self.pad, self.max_new_tokens = eos, pad, max_new_tokens
        self.temperature, self.top_p, self.seed, self.stops = temperature, top_p, seed, stops
        self.device = next(model.parameters()).device
        # a peft model's forward takes **kwargs and hands them on: read the base model's signature
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(inner.forward).parameters
        # transformers 5 calls the cache argument `cache`; 4.x called it `past_key_values`.
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.logits_to_keep = "logits_to_keep" in params

    def _new_cache(self, capacity: int):
        """A DynamicCache whose layers write into buffers of ``capacity`` positions where the
        installed transformers allows it (its own layers copy the whole cache at every step)."""
        from transformers import DynamicCache

        config = self.model.config
        text_config = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        try:
            cache = DynamicCache(config=text_config)
        except TypeError:  # transformers 4.x: a DynamicCache takes no config and has no layer objects
            return DynamicCache()
        layer_class = _preallocated_layer_class()
        layers = getattr(cache, "layers", None)
        if layer_class is not None and layers and all(type(layer) is layer_class.__base__ for layer in layers):
            cache.layers = [layer_class(capacity) for _ in layers]
        return cache

    def _forward(self, input_ids, attention_mask, position_ids, cache):
        kwargs = {self.cache_arg: cache}
        if self.logits_to_keep:
            kwargs["logits_to_keep"] = 1
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=True, **kwargs)
        return out.logits[:, -1].float()

    def run(self, rows: list[_Row]) -> None:
        import torch

        with torch.inference_mode():
            self._run(rows)

    def _run(self, rows: list[_Row]) -> None:
        import torch

        device = self.device
        # One prefill row per distinct prompt in the batch; its samples share it.
        distinct: dict[tuple[int, ...], int] = {}
        for r in rows:
            distinct.setdefault(tuple(r.ids), len(distinct))
        width = max(len(ids) for ids in distinct)
        input_ids = torch.full((len(distinct), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(distinct), width), dtype=torch.long)
        for ids, i in distinct.items():  # left padding: new tokens follow the prompt directly
            if ids:
                input_ids[i, width - len(ids) :] = torch.tensor(ids)
                mask[i, width - len(ids) :] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)  # as generate() numbers them
        cache = self._new_cache(width + self.max_new_tokens)
        logits = self._forward(input_ids, mask, positions, cache)
        position = positions[:, -1:]
        select = [distinct[tuple(r.ids)] for r in rows]
        if select != list(range(len(distinct))):  # samples: each prompt's cache row repeated per sample
            index = torch.tensor(select, device=device)
            cache.batch_select_indices(index)
            logits, mask, position = logits[index], mask[index], position[index]
        live = list(rows)  # the batch's rows, in cache order; a finished row may stay as a companion
        generators = [self._generator(r) for r in live] if self.temperature > 0 else None
        for step in range(self.max_new_tokens):
            tokens, entropies = self._choose(logits, generators)
            ended = False
            for r, token, entropy in zip(live, tokens.tolist(), entropies.tolist()):
                if not r.done:
                    self._advance(r, token, entropy)
                    ended |= r.done
            if all(r.done for r in live) or step + 1 == self.max_new_tokens:
                break
            if ended:
                keep = [i for i, r in enumerate(live) if not r.done]
                if len(keep) < _MIN_ROWS <= len(live):
                    keep += [i for i, r in enumerate(live) if r.done][: _MIN_ROWS - len(keep)]
                    keep.sort()
                if len(keep) < len(live):
                    index = torch.tensor(keep, device=device)
                    cache.batch_select_indices(index)
                    tokens, mask, position = tokens[index], mask[index], position[index]
                    live = [live[i] for i in keep]
                    if generators is not None:
                        generators = [generators[i] for i in keep]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
            position = position + 1
            logits = self._forward(tokens[:, None], mask, position, cache)

    def _generator(self, row: _Row) -> torch.Generator:
        import torch

        generator = torch.Generator(device=self.device)
        generator.manual_seed(row_seed(self.seed, row.prompt, row.sample))
        return generator

    def _choose(self, logits: torch.Tensor, generators: list | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's next token and the entropy of the distribution it was chosen from."""
        import torch

        scores = logits / self.temperature if generators is not None else logits
        logp = torch.log_softmax(scores, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1)
        if generators is None:
            return torch.argmax(scores, dim=-1), entropy
        if self.top_p < 1.0:  # the nucleus as transformers' TopPLogitsWarper keeps it
            sorted_scores, order = torch.sort(scores, descending=False)
            cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
            remove = cumulative <= (1 - self.top_p)
            remove[..., -1:] = False
            scores = scores.masked_fill(remove.scatter(1, order, remove), float("-inf"))
        cdf = torch.softmax(scores, dim=-1).cumsum(dim=-1)
        draws = torch.stack([torch.rand((), generator=g, device=self.device) for g in generators])
        # Inverse-CDF sampling with each row's own uniform draw; right=True skips zero-probability tokens.
        tokens = torch.searchsorted(cdf, (draws * cdf[:, -1])[:, None], right=True).squeeze(1)
        return tokens.clamp_(max=cdf.shape[1] - 1), entropy

    def _advance(self, row: _Row, token: int, entropy: float) -> None:
        row.tokens.append(token)
        row.entropy += entropy
        text, finished, truncated = None, False, False
        if token == self.eos:
            text, finished = self._decode(row.tokens[:-1]), True
        elif self.stops:
            text = self._decode(row.tokens)
            cut = stop_index(text, self.stops)
            if cut is not None:
                text, finished = text[:cut], True
        if not finished and len(row.tokens) >= self.max_new_tokens:
            text = text if text is not None else self._decode(row.tokens)
            finished = truncated = True
        if finished:
            row.done = True
            row.generation = Generation(text=text, n_tokens=len(row.tokens), truncated=truncated,  # type: ignore[arg-type]
                                        mean_entropy=row.entropy / len(row.tokens), token_ids=tuple(row.tokens))

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)


@lru_cache(maxsize=1)
def _preallocated_layer_class():
    """A transformers DynamicLayer that writes each step's keys and values into buffers allocated
    once and returns views of them, where DynamicLayer concatenates (a copy of the whole cache
    at every step of every layer: at 64 rows of 300 positions more bytes than the weights).
    The views hold the same numbers in the same order: the attention's output is bitwise the same
    (tests compare the tokens with ``model.generate``). None where the installed transformers has
    no such layer class."""
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:
        return None

    class PreallocatedLayer(DynamicLayer):
        def __init__(self, capacity: int) -> None:
            super().__init__()
            self.capacity, self.length = capacity, 0

        def lazy_initialization(self, key_states, value_states) -> None:
            self.device, self.dtype = key_states.device, key_states.dtype
            self.key_buffer = key_states.new_empty((*key_states.shape[:2], self.capacity, key_states.shape[3]))
            self.value_buffer = value_states.new_empty((*value_states.shape[:2], self.capacity, value_states.shape[3]))
            self.is_initialized = True

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self.length + key_states.shape[-2]
            if end > self.capacity:
                raise RuntimeError(f"KV cache holds {self.capacity} positions, asked for {end}")
            self.key_buffer[:, :, self.length : end] = key_states
            self.value_buffer[:, :, self.length : end] = value_states
            self.length = end
            self.keys, self.values = self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def batch_select_indices(self, indices) -> None:
            if not self.is_initialized:
                return
            for name in ("key_buffer", "value_buffer"):
                old = getattr(self, name)
                new = old.new_empty((len(indices), *old.shape[1:]))
                new[:, :, : self.length] = old[indices, :, : self.length]
                setattr(self, name, new)
            self.keys = self.key_buffer[:, :, : self.length]
            self.values = self.value_buffer[:, :, : self.length]

    return PreallocatedLayer
