"""Which column trains, and how, settled from the user's local training file before anything is written: the
format auto_convert_dataset finds; aitraining's default chat template dropped for plain text; for a text column
left at its default that is absent, the conversation column found instead."""

from __future__ import annotations

from typing import Any

from autotrain_unsloth.data.checks import check_file
from autotrain_unsloth.data.conversations import is_chat, looks_like_conversation
from autotrain_unsloth.data.files import DataError
from autotrain_unsloth.data.prepare.auto_convert import detect, settings_for
from autotrain_unsloth.data.prepare.local_data import local_train_file, read_rows
from autotrain_unsloth.params import LLMTrainingParams

# aitraining's names for a column of conversations, looked for when the text column is absent.
CONVERSATION_COLUMNS = ("conversations", "messages", "chats", "dialog", "dialogue")


def settle_text_column(params: LLMTrainingParams) -> tuple[LLMTrainingParams, tuple[str, ...]]:
    """The settings to train local data with, and what was decided, for the plan's warnings: auto_convert_dataset's
    format; aitraining's default template dropped for plain text; for a text column (left at its default, "text")
    that is absent, the conversation column found instead, rendered with the tokenizer's chat template unless one is
    named, ShareGPT rows mapped."""
    train_file = local_train_file(params)
    if train_file is not None:
        check_file(train_file)  # before anything reads it: its problems named by line
    if params.auto_convert_dataset:
        if train_file is None:
            raise DataError(f"auto_convert_dataset converts local data files; {params.data_path!r} is not one (save "
                            "the dataset to a file, or name its columns with --text-column and --chat-template)")
        rows = read_rows(train_file, params)
        update, note = settings_for(params, *detect(rows.column_names, rows[0] if len(rows) else {}, params.trainer),
                                    train_file)
        return params.model_copy(update=update), (note,)
    template_defaulted = params.defaults == "aitraining" and "chat_template" not in params.model_fields_set
    if train_file is None or ("text_column" in params.model_fields_set and not template_defaulted):
        return params, ()
    rows = read_rows(train_file, params)
    if params.text_column in rows.column_names and len(rows):
        return _plain_text_settings(params, rows[0][params.text_column], train_file)
    if "text_column" in params.model_fields_set:
        return params, ()
    found = next((name for name in CONVERSATION_COLUMNS if name in rows.column_names), None)
    if found is None or len(rows) == 0:
        return params, ()
    first = rows[0][found]
    sharegpt = isinstance(first, list) and bool(first) and isinstance(first[0], dict) and "from" in first[0]
    update = {"text_column": found, "chat_template": params.chat_template or "tokenizer",
              "use_sharegpt_mapping": params.use_sharegpt_mapping or sharegpt}
    note = (f"data: {train_file} has no {params.text_column!r} column; training on its {found!r} column"
            + (" (ShareGPT from/value turns)" if sharegpt else "") + " rendered with "
            + (f"the {params.chat_template!r} chat template" if params.chat_template else "the tokenizer's chat template")
            + f" (--text-column {found} --chat-template ... to choose).")
    return params.model_copy(update=update), (note,)


def _plain_text_settings(params: LLMTrainingParams, first: Any, train_file: str) -> tuple[LLMTrainingParams, tuple[str, ...]]:
    """aitraining's default template (chat_template not given) on plain text: the text trains as it is (aitraining
    would stop on it); JSON conversations in a text cell with no template: refused with the fix (check_rows)."""
    if not is_chat(params) and isinstance(first, str) and looks_like_conversation(first):
        raise DataError(f"{train_file}: column {params.text_column!r} holds conversations as JSON text ({first[:40]}...), "
                        "which would train as that literal text: set --chat-template (tokenizer, chatml, ...) to render "
                        "them as conversations, or give plain text")
    if not (params.defaults == "aitraining" and "chat_template" not in params.model_fields_set
            and params.chat_template is not None and isinstance(first, str) and not looks_like_conversation(first)):
        return params, ()
    update = {"chat_template": None, "use_sharegpt_mapping": False}
    if "response_only_loss" not in params.model_fields_set:
        update["response_only_loss"] = False
    return params.model_copy(update=update), (
        f"data: {train_file}: column {params.text_column!r} holds plain text, so aitraining's default chat_template "
        f"{params.chat_template!r} is not used" + (" (nor response-only loss)" if params.response_only_loss else "")
        + "; the text trains as it is.",)
