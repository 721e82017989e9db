"""The training job's data: one split, from the prepared data, a local folder of files or the Hub, cut to
aitraining's max_samples; and the tokenizer with AutoTrain's adjustments and the chat template."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from autotrain_unsloth.data.chat_templates import TEMPLATES
from autotrain_unsloth.data.files import DataError, accepted, find_split_file, is_saved_dataset, read_data_file
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.remote_code import trust_remote_code

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase


def load_split(params: LLMTrainingParams, split: str) -> "Dataset":
    """One split, from prepared data, a local folder of files, or the Hub; cut to aitraining's max_samples."""
    dataset = _read_split(params, split)
    return at_most(dataset, params.max_samples, split == params.train_split) if params.max_samples else dataset


def _read_split(params: LLMTrainingParams, split: str) -> "Dataset":
    from datasets import load_dataset, load_from_disk

    if is_saved_dataset(params.data_path):
        saved = load_from_disk(params.data_path)
        if split not in saved:
            raise DataError(f"{params.data_path}: no split {split!r} (has {', '.join(saved)})")
        return saved[split]
    if os.path.isdir(params.data_path):
        path = find_split_file(params.data_path, split)
        if path is None:
            raise DataError(f"data_path {params.data_path!r}: no {split} file ({accepted()})")
        return read_data_file(path, params.text_column)
    name, _, hub_split = split.rpartition(":")  # AutoTrain's "config:split"
    return load_dataset(params.data_path, name=name or None, split=hub_split)


def at_most(dataset: "Dataset", max_samples: int, training: bool) -> "Dataset":
    """aitraining's max_samples: that many training rows, evenly spaced (for variety), and a fifth as many
    validation rows, the first ones."""
    if training:
        step = max(1, len(dataset) // max_samples)
        return dataset.select(list(range(0, len(dataset), step))[:max_samples])
    return dataset.select(range(min(max(1, int(max_samples * 0.2)), len(dataset))))


def max_samples_note(params: LLMTrainingParams) -> tuple[str, ...]:
    if not params.max_samples:
        return ()
    return (f"data: max_samples={params.max_samples}: at most {params.max_samples} training rows, evenly spaced, and "
            f"{max(1, int(params.max_samples * 0.2))} validation rows (aitraining's cut, for trying a setup out).",)


def load_tokenizer(params: LLMTrainingParams, max_length: int) -> "PreTrainedTokenizerBase":
    """The tokenizer with AutoTrain's adjustments: the plan's sequence length as its maximum, padding side, pad
    token, chat template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(params.model, trust_remote_code=trust_remote_code())
    tokenizer.model_max_length = max_length
    if params.padding:
        tokenizer.padding_side = params.padding
    named = TEMPLATES.get(params.chat_template or "")
    if named:
        missing = [token for token in named.added_tokens if token not in tokenizer.get_vocab()]
        if missing:
            tokenizer.add_special_tokens({"additional_special_tokens": missing})
        if named.end_of_turn:
            tokenizer.eos_token = named.end_of_turn  # so that generation stops at the end of a turn
        tokenizer.chat_template = named.jinja
    elif (params.chat_template == "tokenizer" or params.use_sharegpt_mapping) and not tokenizer.chat_template:
        raise DataError(f"chat_template='tokenizer' (or use_sharegpt_mapping without a chat_template), but the "
                        f"tokenizer of {params.model!r} has no chat template; name one (chat_template chatml, zephyr, "
                        "llama-3, ...)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
