"""Small random-init models from real architecture configs, with a tokenizer trained on the fly.

No machine here reaches the model hub, so the demo, the tests and the benchmarks build their models: the
real transformers class of each architecture (Llama, Mistral, Gemma, Qwen2, and GPT-2 / Phi-3 as ones the
Unsloth fast path does not take), shrunk, with a byte-level BPE tokenizer trained on the given texts.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

ARCHITECTURES = ("llama", "mistral", "gemma", "qwen2", "gpt2", "phi3")


def model_config(architecture: str, vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4,
                 kv_heads: int = 2, intermediate: int | None = None, max_positions: int = 512):
    """A transformers config of the named architecture, shrunk. head_dim = hidden / heads."""
    import transformers

    intermediate = intermediate or 2 * hidden
    common: dict[str, Any] = dict(vocab_size=vocab_size, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    decoder: dict[str, Any] = dict(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                   num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=max_positions,
                   tie_word_embeddings=False, **common)
    if architecture == "llama":
        return transformers.LlamaConfig(**decoder)
    if architecture == "mistral":
        return transformers.MistralConfig(sliding_window=None, **decoder)
    if architecture == "gemma":
        return transformers.GemmaConfig(head_dim=hidden // heads, **{**decoder, "tie_word_embeddings": True})
    if architecture == "qwen2":
        return transformers.Qwen2Config(use_sliding_window=False, **decoder)
    if architecture == "phi3":
        return transformers.Phi3Config(**decoder)
    if architecture == "gpt2":
        return transformers.GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_positions=max_positions,
                                       n_inner=intermediate, **common)
    raise ValueError(f"unknown architecture {architecture!r}; choose from {', '.join(ARCHITECTURES)}")


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """A byte-level BPE tokenizer (bos/eos/pad/unk special tokens) trained on texts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0..3, matching the configs above
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>", model_max_length=512)


def build_tiny_model(architecture: str, folder: str, texts: Iterable[str], *, seed: int = 0, dtype: str = "float32",
                     vocab_size: int = 512, **shape) -> str:
    """Save a random-init model of `architecture` and its tokenizer into folder; returns folder."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = train_tokenizer(texts, vocab_size)
    config = model_config(architecture, len(tokenizer), **shape)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).to(getattr(torch, dtype))
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
