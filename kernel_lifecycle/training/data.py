"""Probes -> causal-LM training batches.

One example is ``prompt + canonical_solution + eos``. The prompt and the solution are tokenized
separately and concatenated: that puts the loss boundary exactly between them and matches what
the model sees at generation time (the prompt alone, then its own continuation). Labels are
-100 on the prompt and on padding, so every loss in this project is a loss on solutions.

Batches are fixed-size and drawn from a deterministic, seeded stream that reshuffles at each
epoch and wraps around, so any number of steps can be served from a small skill.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

import torch

from kernel_lifecycle.errors import JobError
from kernel_lifecycle.models.prompting import answer, format_of

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class Probe(Protocol):
    """What training reads of a probe (``boundary.skills.Probe`` is one): a prompt and its solution."""

    @property
    def prompt(self) -> str: ...

    @property
    def canonical_solution(self) -> str: ...

IGNORE_INDEX = -100  # what torch's cross_entropy (and transformers) skip


@dataclass(frozen=True)
class Example:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]  # IGNORE_INDEX on the prompt part


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # (batch, time), right-padded
    attention_mask: torch.Tensor  # 1 on real tokens
    labels: torch.Tensor  # IGNORE_INDEX on prompt and padding
    tokens: int  # non-padding input tokens; a Python int so counting never syncs

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


class Pair(NamedTuple):
    """A forget batch and a retain batch drawn in lockstep (retain is None when unused)."""

    forget: Batch
    retain: Batch | None

    @property
    def tokens(self) -> int:
        return self.forget.tokens + (self.retain.tokens if self.retain is not None else 0)


def encode_probes(
    probes: Sequence[Probe],
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int = 512,
    what: str = "training set",
    language: str = "",
    program: bool = False,
    instruction: str = "",
) -> list[Example]:
    """Tokenize probes into examples; refuse an empty set before any training starts.

    In the tokenizer's prompt format (``models.prompting.format_of``): a completion base reads
    the prompt and learns the solution; a chat base reads the prompt rendered by its template
    and learns the answer a chat model gives (``prompting.answer``: a fenced block in
    ``language``; ``program``: the solution is the whole program, not the prompt's continuation;
    ``instruction``: what a chat base reads before each prompt).
    """
    if not probes:
        raise JobError(f"{what} has no training examples; add probes to its train split")
    if max_length < 2:
        raise JobError(f"max_length must be at least 2 tokens, got {max_length}")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise JobError("the tokenizer has no eos token; examples must end with one")
    fmt = format_of(tokenizer)
    plain = fmt.kind == "completion"  # a rendered chat prompt carries its own special tokens
    examples = []
    for probe in probes:
        prompt = list(tokenizer(fmt.render(probe.prompt, instruction), add_special_tokens=plain)["input_ids"])
        target = answer(fmt, probe.prompt, probe.canonical_solution, language=language, program=program)
        solution = list(tokenizer(target, add_special_tokens=False)["input_ids"])
        solution.append(eos)
        # Too long: keep the end of the prompt (the signature right before the body) and as
        # much of the solution as fits, but never less than half the budget for the solution.
        room_for_prompt = max(max_length - len(solution), max_length // 2)
        prompt = prompt[len(prompt) - min(len(prompt), room_for_prompt) :]
        solution = solution[: max_length - len(prompt)]
        examples.append(
            Example(
                input_ids=tuple(prompt + solution),
                labels=tuple([IGNORE_INDEX] * len(prompt) + solution),
            )
        )
    return examples


def collate(examples: Sequence[Example], pad_id: int) -> Batch:
    """Right-pad to the longest example of the batch."""
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return Batch(input_ids, mask, labels, tokens=sum(len(e.input_ids) for e in examples))


def _stream(examples: Sequence[Example], seed: int) -> Iterator[Example]:
    """Examples forever: a fresh seeded shuffle per epoch, so runs repeat exactly."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    while True:
        rng.shuffle(order)
        for i in order:
            yield examples[i]


def _take(stream: Iterator[Example], n: int) -> list[Example]:
    return [next(stream) for _ in range(n)]


def batches(
    examples: Sequence[Example],
    *,
    batch_size: int,
    seed: int,
    pad_id: int,
    what: str = "training set",
) -> Iterator[Batch]:
    """An endless, deterministic stream of full batches (wrapping across epochs)."""
    if not examples:
        raise JobError(f"{what} has no training examples; add probes to its train split")
    if batch_size < 1:
        raise JobError(f"batch size must be at least 1, got {batch_size}")
    stream = _stream(examples, seed)
    while True:
        yield collate(_take(stream, batch_size), pad_id)


def paired_batches(forget: Iterable[Batch], retain: Iterable[Batch] | None) -> Iterator[Pair]:
    """Forget and retain batches in lockstep, for the unlearning losses."""
    if retain is None:
        for f in forget:
            yield Pair(f, None)
    else:
        for f, r in zip(forget, retain):
            yield Pair(f, r)


def replay_batches(
    new: Sequence[Example],
    replay: Sequence[Example],
    *,
    batch_size: int,
    replay_ratio: float,
    seed: int,
    pad_id: int,
    what: str = "upskill set",
) -> Iterator[Batch]:
    """Batches of new-skill examples with a share of retained-skill examples mixed in.

    Every batch holds ``round(batch_size * replay_ratio)`` replay examples (at least one when
    the ratio is positive and there is replay data), so the replay share is the same at every
    step instead of only on average.
    """
    if not new:
        raise JobError(f"{what} has no training examples; add probes to its train split")
    if not 0.0 <= replay_ratio < 1.0:
        raise JobError(f"replay ratio must be in [0, 1), got {replay_ratio}")
    if batch_size < 1:
        raise JobError(f"batch size must be at least 1, got {batch_size}")
    n_replay = 0
    if replay and replay_ratio > 0:
        n_replay = min(batch_size - 1, max(1, round(batch_size * replay_ratio)))
    new_stream = _stream(new, seed)
    # A different seed for the replay stream so the two orders are not correlated.
    replay_stream = _stream(replay, seed + 1) if n_replay else None
    while True:
        chosen = _take(new_stream, batch_size - n_replay)
        if replay_stream is not None:
            chosen += _take(replay_stream, n_replay)
        yield collate(chosen, pad_id)


def pad_id_of(tokenizer) -> int:
    """The padding id: the tokenizer's pad token, else eos (padding is masked either way)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise JobError("the tokenizer has neither a pad nor an eos token")
    return int(pad)
