"""Evaluation generation: the same greedy tokens as ``model.generate``, stop strings, honest
truncation, seeded sampling. A tiny random Llama whose weights are scaled up (peaked
distributions) and whose end-of-sequence row is boosted, so that rows end at different steps
and the batch shrinks as they do."""

from __future__ import annotations

import pytest
import torch

from kernel_lifecycle.boundary.generation import generate, stop_index
from tests.tiny import tiny_llama, toy_probes, toy_tokenizer

BUDGET = 24


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Models this small gain nothing from a second thread, and on a busy machine two OpenMP
    threads wait on each other: the module runs several times faster on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return toy_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    model = tiny_llama(tokenizer, layers=2, hidden=32, seed=1).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.mul_(8)
        model.lm_head.weight[tokenizer.eos_token_id] *= 3
    return model


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    texts = [p.prompt for p in toy_probes("python", 8) + toy_probes("cobol", 8)]
    texts[5] = texts[5][:7]  # a short one: more left padding in its batch
    return texts


def plain_generate(model, tokenizer, prompts: list[str], *, batch_size: int, max_new_tokens: int = BUDGET) -> list[list[int]]:
    """``model.generate`` greedy on the batches ``generate`` forms (rows sorted by prompt length),
    each row's new tokens up to and including its end-of-sequence token."""
    ids = tokenizer(prompts)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))
    out: list[list[int]] = [[] for _ in prompts]
    eos = tokenizer.eos_token_id
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            enc = tokenizer([prompts[i] for i in chunk], return_tensors="pt", padding=True)
            with torch.inference_mode():
                seqs = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                      pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)
            for row, i in enumerate(chunk):
                tokens = seqs[row, enc["input_ids"].shape[1] :].tolist()
                out[i] = tokens[: tokens.index(eos) + 1] if eos in tokens else tokens
    finally:
        tokenizer.padding_side = "right"
    return out


@pytest.mark.parametrize("batch_size", [64, 5, 1])
def test_greedy_tokens_are_those_of_model_generate(model, tokenizer, prompts, batch_size: int) -> None:
    ours = generate(model, tokenizer, prompts, max_new_tokens=BUDGET, batch_size=batch_size)
    theirs = plain_generate(model, tokenizer, prompts, batch_size=batch_size)
    eos = tokenizer.eos_token_id
    lengths = {len(t) for t in theirs}
    assert len(lengths) >= 4 and BUDGET in lengths  # rows end at different steps, some run out of budget
    for (gen,), tokens in zip(ours, theirs):
        assert list(gen.token_ids) == tokens
        assert gen.n_tokens == len(tokens)
        assert gen.truncated == (tokens[-1] != eos)
        assert gen.text == tokenizer.decode(tokens[:-1] if tokens[-1] == eos else tokens, skip_special_tokens=True)


def test_finished_rows_leave_the_batch_down_to_two(model, tokenizer, prompts) -> None:
    """Rows that ended are not computed any more, but a forward pass keeps two rows: at one,
    the CPU matmul takes another kernel, whose last bits differ from the batched one's."""
    first = generate(model, tokenizer, prompts, max_new_tokens=BUDGET)
    long = next(i for i, (g,) in enumerate(first) if g.truncated)
    some = [prompts[long]] + [p for p, (g,) in zip(prompts, first) if not g.truncated]  # one row outlives the rest
    rows: list[int] = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: rows.append(kw["input_ids"].shape[0]), with_kwargs=True)
    try:
        gens = generate(model, tokenizer, some, max_new_tokens=BUDGET, batch_size=64)
    finally:
        hook.remove()
    assert sum(g.truncated for (g,) in gens) == 1 and len(gens) >= 4
    assert rows[0] == len(some)  # the prefill
    assert rows == sorted(rows, reverse=True) and min(rows) == 2
    # each decode step computes the rows still running (and a companion when one is left)
    running = [sum(g.n_tokens > step for (g,) in gens) for step in range(1, BUDGET)]
    assert rows[1:] == [max(n, 2) for n in running if n]


def test_entropy_is_the_mean_over_the_steps_of_what_was_generated(model, tokenizer, prompts) -> None:
    (gen,) = generate(model, tokenizer, prompts[:1], max_new_tokens=BUDGET)[0]
    enc = tokenizer(prompts[:1], return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=BUDGET, do_sample=False, output_logits=True,
                             return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
    logp = torch.log_softmax(torch.stack(out.logits, dim=1)[0, : gen.n_tokens].float(), dim=-1)
    expected = float(-(logp.exp() * logp).sum(-1).mean())
    assert gen.mean_entropy == pytest.approx(expected, rel=1e-5)


def test_a_stop_string_ends_a_row_and_is_cut_from_its_text(model, tokenizer, prompts) -> None:
    plain = generate(model, tokenizer, prompts, max_new_tokens=BUDGET)
    row = next(i for i, (g,) in enumerate(plain) if g.truncated and len(g.text) > 8)
    full = plain[row][0]
    stop = full.text[4:7]  # three characters from the middle of a row that ran out of budget
    stopped = generate(model, tokenizer, prompts, max_new_tokens=BUDGET, stop=["\x00never", stop])
    gen = stopped[row][0]
    cut = full.text.index(stop)
    assert gen.text == full.text[:cut]
    assert not gen.truncated
    assert gen.n_tokens < full.n_tokens and gen.token_ids == full.token_ids[: gen.n_tokens]
    # it ended at the first token whose text holds the stop string, not later
    assert stop in tokenizer.decode(gen.token_ids, skip_special_tokens=True)
    assert stop not in tokenizer.decode(gen.token_ids[:-1], skip_special_tokens=True)
    for (before,), (after,) in zip(plain, stopped):  # the other rows: cut where the stop occurs, else unchanged
        at = stop_index(before.text, [stop])
        if at is None:
            assert after == before
        else:
            assert after.text == before.text[:at] and not after.truncated


def test_a_stop_may_be_a_function_of_the_generated_text(model, tokenizer, prompts) -> None:
    """A prompt format's end of an answer is a function (where the text ends, or None): it ends
    rows exactly where the equivalent stop string does."""
    plain = generate(model, tokenizer, prompts, max_new_tokens=BUDGET)
    row = next(i for i, (g,) in enumerate(plain) if g.truncated and len(g.text) > 8)
    stop = plain[row][0].text[4:7]
    by_string = generate(model, tokenizer, prompts, max_new_tokens=BUDGET, stop=[stop])
    by_function = generate(model, tokenizer, prompts, max_new_tokens=BUDGET, stop=[lambda text: text.find(stop) if stop in text else None])
    assert by_function == by_string and not by_function[row][0].truncated


def test_a_stop_string_is_matched_in_the_generated_text_only(model, tokenizer, prompts) -> None:
    (plain,) = generate(model, tokenizer, prompts[:1], max_new_tokens=BUDGET)[0]
    straddling = prompts[0][-1] + plain.text[0]  # the prompt's last character and the reply's first
    assert straddling not in plain.text
    (gen,) = generate(model, tokenizer, prompts[:1], max_new_tokens=BUDGET, stop=[straddling])[0]
    assert gen == plain


def test_truncated_is_only_a_row_that_hit_the_budget(model, tokenizer, prompts) -> None:
    full = generate(model, tokenizer, prompts, max_new_tokens=BUDGET)
    ended = [g for (g,) in full if not g.truncated]
    assert ended and all(g.token_ids[-1] == tokenizer.eos_token_id for g in ended)
    budget = min(g.n_tokens for g in ended)  # one row says eos exactly at the budget
    short = generate(model, tokenizer, prompts, max_new_tokens=budget)
    for (long,), (gen,) in zip(full, short):
        assert gen.token_ids == long.token_ids[:budget]
        assert gen.truncated == (long.n_tokens > budget)
        assert gen.n_tokens == min(long.n_tokens, budget)
    assert any(not g.truncated and g.n_tokens == budget for (g,) in short)


def test_greedy_samples_and_repeated_prompts_are_copies(model, tokenizer, prompts) -> None:
    gens = generate(model, tokenizer, [prompts[0], prompts[1], prompts[0]], max_new_tokens=8, n_samples=3)
    assert [len(g) for g in gens] == [3, 3, 3]
    assert gens[0] == gens[2] == [gens[0][0]] * 3
    assert gens[1][0].token_ids == generate(model, tokenizer, prompts[1:2], max_new_tokens=8)[0][0].token_ids


def test_sampling_is_seeded_per_row(model, tokenizer, prompts) -> None:
    def tokens(**kw) -> list[list[tuple[int, ...]]]:
        gens = generate(model, tokenizer, prompts[:4], max_new_tokens=10, n_samples=3, temperature=1.0, **kw)
        assert [len(g) for g in gens] == [3] * 4
        return [[g.token_ids for g in row] for row in gens]

    first = tokens(seed=3)
    assert tokens(seed=3) == first
    assert tokens(seed=3, batch_size=2) == first  # a row's draws do not depend on its batch
    assert tokens(seed=4) != first
    assert len({t for row in first for t in row}) == 12  # the samples of a prompt differ
    # a prompt's samples are the same whatever the other prompts
    alone = generate(model, tokenizer, prompts[:1], max_new_tokens=10, n_samples=3, temperature=1.0, seed=3)
    assert [g.token_ids for g in alone[0]] == first[0]


def test_a_nucleus_of_one_token_is_greedy(model, tokenizer, prompts) -> None:
    greedy = generate(model, tokenizer, prompts[:4], max_new_tokens=10)
    narrow = generate(model, tokenizer, prompts[:4], max_new_tokens=10, n_samples=2, temperature=0.7, top_p=1e-6)
    assert [[g.token_ids for g in row] for row in narrow] == [[row[0].token_ids] * 2 for row in greedy]


def test_bad_arguments_are_refused(model, tokenizer) -> None:
    assert generate(model, tokenizer, [], max_new_tokens=4) == []
    for kw in ({"max_new_tokens": 0}, {"n_samples": 0}, {"batch_size": 0}, {"temperature": -1.0},
               {"top_p": 0.0}, {"stop": [""]}):
        with pytest.raises(ValueError):
            generate(model, tokenizer, ["x"], **{"max_new_tokens": 4, **kw})
    with pytest.raises(TypeError):
        generate(model, tokenizer, ["x"], max_new_tokens=4, stop="\n")


def test_an_adapted_kernel_decodes_with_its_base_models_cache_and_last_logits(model, tokenizer, prompts) -> None:
    """A peft model's forward takes **kwargs: the decoder reads the base model's signature, so an
    adapted kernel gets the same cache argument and one row of logits per prefill (not the whole
    prompt's), and its tokens are still model.generate's."""
    import copy
    import warnings

    from peft import LoraConfig, get_peft_model

    from kernel_lifecycle.boundary.generation import _Decoder

    adapted = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).eval()
    decoder = _Decoder(adapted, tokenizer, eos=tokenizer.eos_token_id, pad=tokenizer.pad_token_id, max_new_tokens=BUDGET,
                       temperature=0.0, top_p=1.0, seed=0, stops=())
    plain = _Decoder(model, tokenizer, eos=tokenizer.eos_token_id, pad=tokenizer.pad_token_id, max_new_tokens=BUDGET,
                     temperature=0.0, top_p=1.0, seed=0, stops=())
    assert (decoder.cache_arg, decoder.logits_to_keep) == (plain.cache_arg, plain.logits_to_keep) == ("cache", True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = generate(adapted, tokenizer, prompts, max_new_tokens=BUDGET, batch_size=5)
    assert not [w for w in caught if "past_key_values" in str(w.message)]  # transformers' deprecation of the old name
    theirs = plain_generate(adapted, tokenizer, prompts, batch_size=5)
    assert [list(g.token_ids) for (g,) in ours] == theirs
