"""Tiny GGUF files written here with the ``gguf`` package, as llama.cpp's converter writes them.

A tiny Llama (``tests.tiny``) and its byte-level BPE tokenizer, stored in float32 with q/k
permuted the way llama.cpp permutes them (transformers undoes it on load): converting the file
back must give exactly the model it was written from. ``architecture`` other than "llama" writes
the same tensors under a name transformers has no loader for.
"""

from __future__ import annotations

import json
from pathlib import Path


def _permute(weights, n_head: int):  # noqa: ANN001, ANN202 - llama.cpp's convert_hf_to_gguf permutation
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(
        weights.shape
    )


def write_tiny_gguf(path: Path, *, architecture: str = "llama", seed: int = 1, layers: int = 2):
    """Write a tiny model as GGUF at ``path``; returns (the transformers model, its tokenizer)."""
    import gguf
    import numpy as np

    from tests.tiny import tiny_llama, toy_tokenizer

    tokenizer = toy_tokenizer()
    model = tiny_llama(tokenizer, layers=layers, hidden=32, heads=2, seed=seed)
    cfg = model.config
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("tiny")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(cfg.vocab_size)

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    tokens = [t for t, _ in sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])]
    specials = {tokenizer.pad_token, tokenizer.eos_token, tokenizer.bos_token}
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in specials else 1 for t in tokens])  # 3: control
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in spec["model"]["merges"]])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)

    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    parts = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for i in range(cfg.num_hidden_layers):
        names.update({f"model.layers.{i}.{hf}.weight": f"blk.{i}.{g}.weight" for hf, g in parts.items()})
    for name, tensor in model.state_dict().items():
        array = tensor.detach().numpy().astype(np.float32)
        if "q_proj" in name:
            array = _permute(array, cfg.num_attention_heads)
        elif "k_proj" in name:
            array = _permute(array, cfg.num_key_value_heads)
        writer.add_tensor(names[name], array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model, tokenizer
