"""The text column a trainer tokenizes: conversations rendered with the chat template (without a BOS the
tokenizer will add again), or the raw text, checked to be text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotrain_unsloth.data.conversations import conversation, is_chat, looks_like_conversation
from autotrain_unsloth.data.files import DataError
from autotrain_unsloth.data.job.chat_tokens import render, without_bos
from autotrain_unsloth.params import LLMTrainingParams

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase


def render_text(dataset: "Dataset", params: LLMTrainingParams, tokenizer: "PreTrainedTokenizerBase") -> "Dataset":
    """A dataset with one `text` column: conversations rendered with the chat template, or the raw text."""
    column = params.text_column
    if column not in dataset.column_names:
        raise DataError(f"{params.data_path}: no column {column!r}; columns are {', '.join(dataset.column_names)}")
    if not is_chat(params):
        first = dataset[0][column]
        if isinstance(first, str) and looks_like_conversation(first):
            raise DataError(f"column {column!r} holds conversations as JSON text ({first[:40]}...): set --chat-template "
                            "tokenizer|chatml|... to render them, or give plain text")
        if not isinstance(first, str):
            raise DataError(f"column {column!r} holds {type(first).__name__} values (conversations?); set "
                            "--chat-template tokenizer|chatml|zephyr to render them, or give plain text")
        selected = dataset.select_columns([column])
        return selected if column == "text" else selected.rename_column(column, "text")

    def rendered(row: dict, index: int) -> dict:
        messages = conversation(row[column], f"row {index} of column {column!r}", params)
        # A template that writes the BOS itself, tokenized later by a tokenizer that adds one too, would give two.
        return {"text": without_bos(tokenizer, render(tokenizer, messages))}

    return dataset.map(rendered, with_indices=True, remove_columns=dataset.column_names)
