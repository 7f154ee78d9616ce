"""The one byte-level BPE tokenizer recipe: the demo base and the tests' tiny models both train it."""

from __future__ import annotations

from collections.abc import Iterable

PAD, EOS, BOS = "<pad>", "<eos>", "<bos>"


def train_bpe_tokenizer(texts: Iterable[str], *, vocab_size: int):
    """A byte-level BPE tokenizer (any text encodes) with pad/eos/bos tokens, trained on ``texts``.

    Deterministic for the same texts and size: the demo base's cache key relies on it.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=BOS)
