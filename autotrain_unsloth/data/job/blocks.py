"""Text cut into blocks for the `default` trainer: tokenized, concatenated and cut into blocks of block_size,
labels equal to the inputs (transformers' run_clm)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from autotrain_unsloth.data.files import DataError

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

GROUP_ROWS = 1000  # rows concatenated together before cutting into blocks (transformers' run_clm default)


def to_blocks(dataset: "Dataset", tokenizer: "PreTrainedTokenizerBase", block_size: int, add_eos_token: bool) -> "Dataset":
    """Tokenize the text column, concatenate, and cut into blocks of block_size (labels = inputs)."""
    eos = tokenizer.eos_token if add_eos_token else ""

    def tokenize(batch: dict) -> dict:
        return tokenizer([text + eos for text in batch["text"]])

    def group(batch: dict) -> dict:
        # itertools.chain is linear in the tokens; sum(lists, []) copied the growing list at every row.
        joined = {key: list(itertools.chain.from_iterable(batch[key])) for key in ("input_ids", "attention_mask")}
        total = len(joined["input_ids"])
        if total >= block_size:
            total = (total // block_size) * block_size
        blocks = {key: [values[i:i + block_size] for i in range(0, total, block_size)] for key, values in joined.items()}
        blocks["labels"] = [list(ids) for ids in blocks["input_ids"]]
        return blocks

    tokens = dataset.map(tokenize, batched=True, remove_columns=dataset.column_names)
    # transformers' run_clm: groups of GROUP_ROWS rows, each cut into blocks (a group's tail shorter than a block
    # is dropped, as run_clm drops it), so memory and time stay linear in the data.
    blocks = tokens.map(group, batched=True, batch_size=GROUP_ROWS)
    if len(blocks) == 0:
        raise DataError("the training text is empty after tokenization")
    return blocks
