from __future__ import annotations

import copy
import json

import pytest
import torch
from peft import PeftModel
from transformers import GPT2Config, GPT2LMHeadModel

from kernel_lifecycle.errors import JobError
from kernel_lifecycle.hashing import sha256_file
from kernel_lifecycle.training.data import batches, encode_probes, pad_id_of
from kernel_lifecycle.training.lora import active_adapter, attach_lora, save_adapter, target_modules
from kernel_lifecycle.training.loop import train
from kernel_lifecycle.training.losses import ce_loss
from tests.tiny import tiny_llama, toy_probes, toy_tokenizer


@pytest.fixture(scope="module")
def tok():
    return toy_tokenizer()


def test_targets_are_detected_for_llama_and_gpt2(tok):
    llama = tiny_llama(tok)
    assert target_modules(llama) == [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
    ]
    assert target_modules(llama, include_mlp=False) == ["q_proj", "k_proj", "v_proj", "o_proj"]
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tok)))
    assert target_modules(gpt2) == ["c_attn", "c_fc", "c_proj"]
    peft_gpt2 = attach_lora(gpt2, seed=0)
    trainable = [n for n, p in peft_gpt2.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with pytest.raises(JobError, match="cannot find LoRA target modules"):
        target_modules(torch.nn.Sequential(torch.nn.Linear(2, 2)))


@pytest.mark.parametrize("name", ["default", "upskill_sql"])
def test_saved_adapter_loads_with_plain_peft(tok, tmp_path, name):
    base = tiny_llama(tok, seed=1)
    pristine = copy.deepcopy(base)
    model = attach_lora(base, adapter_name=name, seed=0)
    examples = encode_probes(toy_probes("python", 4), tok)
    train(model, batches(examples, batch_size=2, seed=0, pad_id=pad_id_of(tok)),
          loss_fn=ce_loss, steps=3, lr=1e-2, seed=0)
    assert active_adapter(model) == name

    saved = save_adapter(model, tmp_path / "adapters" / name)

    files = sorted(p.name for p in saved.path.iterdir())
    assert files == ["adapter_config.json", "adapter_model.safetensors"]
    assert saved.sha256 == sha256_file(saved.path / "adapter_model.safetensors")
    assert json.loads((saved.path / "adapter_config.json").read_text())["peft_type"] == "LORA"
    assert not list(tmp_path.rglob("*.bin"))

    loaded = PeftModel.from_pretrained(pristine, saved.path)
    ids = torch.tensor([examples[0].input_ids])
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        got = loaded(input_ids=ids).logits
    torch.testing.assert_close(got, expected)
    # and the adapter really changed something (the test would pass vacuously otherwise)
    with torch.no_grad(), loaded.disable_adapter():
        assert not torch.allclose(loaded(input_ids=ids).logits, expected)


def test_saving_an_unknown_adapter_is_refused(tok, tmp_path):
    model = attach_lora(tiny_llama(tok), seed=0)
    with pytest.raises(JobError, match="no adapter named 'nope'"):
        save_adapter(model, tmp_path / "x", adapter_name="nope")
