"""Model loading, one backend per file. Each exposes `load_model(params, plan, tokenizer, max_seq_length) -> model`,
returning the model ready to train: LoRA attached when the plan says so, every parameter trainable for full
fine-tuning. A backend follows the plan; it never decides a method or a precision. What both need is here."""

from __future__ import annotations

import os

from autotrain_unsloth.distributed import say


class UnslothLoadError(RuntimeError):
    """Unsloth cannot load this model; the job falls back to transformers in a fresh process."""


def trust_remote_code() -> bool:
    """AutoTrain's ALLOW_REMOTE_CODE switch (default true there). Ours defaults to false: remote code is opt-in."""
    return os.environ.get("ALLOW_REMOTE_CODE", "false").lower() in ("1", "true", "yes")


def ready_for_training(model):
    """Settings every backend's model trains with. No KV cache: training never reads one, and with a cache
    transformers stops building the block-diagonal mask of a packed row from position_ids, so the documents of
    a packed row would attend to each other (tests/test_packing.py)."""
    model.config.use_cache = False
    return model


def resize_for_tokenizer(model, tokenizer) -> list[int]:
    """Grow the embeddings when the tokenizer has tokens the model lacks; returns the new token ids."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= rows:
        return []
    model.resize_token_embeddings(len(tokenizer))
    say(f"Embeddings resized from {rows} to {len(tokenizer)} rows for tokens added by the chat template.")
    return list(range(rows, len(tokenizer)))
