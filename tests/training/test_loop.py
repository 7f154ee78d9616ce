from __future__ import annotations

import itertools

import pytest
import torch

from kernel_lifecycle.errors import JobError
from kernel_lifecycle.training.data import batches, encode_probes, pad_id_of
from kernel_lifecycle.training.lora import attach_lora
from kernel_lifecycle.training.loop import train
from kernel_lifecycle.training.losses import ce_loss, nll
from tests.tiny import tiny_llama, toy_probes, toy_tokenizer


@pytest.fixture(scope="module")
def tok():
    return toy_tokenizer()


@pytest.fixture
def setup(tok):
    examples = encode_probes(toy_probes("python", 6), tok)
    model = attach_lora(tiny_llama(tok), seed=0)
    return model, examples, pad_id_of(tok)


def test_checkpoints_fall_on_multiples_and_the_last_step(setup):
    model, examples, pad = setup
    seen: list[tuple[int, bool]] = []

    def on_checkpoint(step: int, m: torch.nn.Module) -> None:
        m.eval()  # a real evaluation switches modes; the loop must switch back
        seen.append((step, m is model))

    result = train(
        model,
        batches(examples, batch_size=2, seed=0, pad_id=pad),
        loss_fn=ce_loss,
        steps=7,
        lr=1e-3,
        seed=0,
        checkpoint_every=3,
        on_checkpoint=on_checkpoint,
    )
    assert seen == [(3, True), (6, True), (7, True)]
    assert model.training
    assert result.steps == 7 and len(result.losses) == 7


def test_tokens_are_the_non_padding_inputs(setup):
    model, examples, pad = setup
    drawn = list(itertools.islice(batches(examples, batch_size=4, seed=3, pad_id=pad), 5))
    result = train(model, drawn, loss_fn=ce_loss, steps=5, lr=1e-3, seed=0)
    assert result.tokens == sum(int(b.attention_mask.sum()) for b in drawn)
    assert result.tokens_per_second > 0


def test_training_lowers_the_loss_and_only_touches_the_adapter(setup):
    model, examples, pad = setup
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    full = next(batches(examples, batch_size=len(examples), seed=0, pad_id=pad))
    with torch.no_grad():
        before = nll(model, full).item()
    steps_seen: list[int] = []
    train(
        model,
        batches(examples, batch_size=3, seed=0, pad_id=pad),
        loss_fn=ce_loss,
        steps=15,
        lr=1e-2,
        seed=0,
        on_step=lambda step, loss, stats: steps_seen.append(step),
    )
    with torch.no_grad():
        after = nll(model, full).item()
    assert after < before - 0.5, (before, after)
    assert steps_seen == list(range(1, 16))
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), name


def test_same_seed_same_result(tok):
    examples = encode_probes(toy_probes("python", 6), tok)

    def run() -> list[float]:
        model = attach_lora(tiny_llama(tok), seed=0)
        stream = batches(examples, batch_size=2, seed=0, pad_id=0)
        return train(model, stream, loss_fn=ce_loss, steps=4, lr=1e-2, seed=5).losses

    assert run() == run()


def test_refusals(setup, tok):
    model, examples, pad = setup
    stream = batches(examples, batch_size=2, seed=0, pad_id=pad)
    with pytest.raises(JobError, match="no trainable parameters"):
        train(tiny_llama(tok).requires_grad_(False), stream, loss_fn=ce_loss, steps=1, lr=1e-3, seed=0)
    with pytest.raises(JobError, match="ran out at step 3"):
        train(model, list(itertools.islice(stream, 2)), loss_fn=ce_loss, steps=3, lr=1e-3, seed=0)
    with pytest.raises(JobError, match="steps must be at least 1"):
        train(model, stream, loss_fn=ce_loss, steps=0, lr=1e-3, seed=0)


def test_non_finite_loss_is_reported_at_the_checkpoint(setup):
    model, examples, pad = setup

    def exploding(m, batch):
        # log(0) = -inf: the kind of value a diverging ascent produces.
        return ce_loss(m, batch) + torch.log(torch.zeros(()))

    with pytest.raises(JobError, match="loss became -inf at step 1"):
        train(
            model,
            batches(examples, batch_size=2, seed=0, pad_id=pad),
            loss_fn=exploding,
            steps=2,
            lr=1e-3,
            seed=0,
            grad_clip=None,
            checkpoint_every=2,
        )


def test_progress_task_advances_to_the_step_count(setup):
    import io

    from rich.console import Console
    from rich.progress import Progress

    model, examples, pad = setup
    progress = Progress(console=Console(file=io.StringIO()))
    train(model, batches(examples, batch_size=2, seed=0, pad_id=pad),
          loss_fn=ce_loss, steps=4, lr=1e-3, seed=0, progress=progress)
    (task,) = progress.tasks
    assert task.completed == 4 and task.total == 4


def test_nll_is_the_mean_over_solution_tokens(setup):
    # The loss the loop trains on must equal transformers' own causal-LM loss on the same labels.
    model, examples, pad = setup
    batch = next(batches(examples, batch_size=4, seed=0, pad_id=pad))
    with torch.no_grad():
        ours = nll(model, batch)
        theirs = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       labels=batch.labels).loss
    torch.testing.assert_close(ours, theirs)
