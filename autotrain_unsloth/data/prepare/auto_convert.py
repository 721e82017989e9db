"""aitraining's `auto_convert_dataset`: the data's format detected from its columns (aitraining 0.0.54's rules,
preprocessor/llm.py) and converted to a `messages` column of {role, content} turns, rendered later with the chat
template; `conversation_extension` joins every N single-turn examples into one conversation, in an order shuffled
with the seed (as aitraining). Preference rows (prompt / chosen / rejected) get their columns named instead."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from autotrain_unsloth.data.conversations import SHAREGPT_ROLES
from autotrain_unsloth.data.files import DataError
from autotrain_unsloth.params import LLMTrainingParams

if TYPE_CHECKING:
    from datasets import Dataset

CONVERSATION_COLUMNS = ("messages", "conversations", "chats", "dialog", "dialogue", "chat")
QA_PAIRS = (("question", "answer"), ("query", "response"), ("prompt", "completion"), ("human", "bot"),
            ("input", "target"), ("user", "assistant"), ("instruction", "response"), ("input", "output"))
SHAREGPT_KEYS = (("from", "value"), ("sender", "message"), ("user", "text"), ("role", "text"))
SHOWN = {"alpaca": "Alpaca (instruction/input/output)", "qa": "Q&A ({0}/{1})", "messages": "messages ({0}: role/content)",
         "sharegpt": "ShareGPT ({0}: from/value)", "preference": "preference rows (prompt/chosen/rejected)",
         "plain_text": "plain text (text)"}


def detect(columns: list[str], first: dict, trainer: str) -> tuple[str, tuple[str, ...]]:
    """(format, its columns), in aitraining's order of checks; ("unknown", ()) when none fits."""
    names = set(columns)
    if trainer == "default" and "text" in names:
        return "plain_text", ("text",)
    if {"prompt", "chosen", "rejected"} <= names:
        return "preference", ("prompt", "chosen", "rejected")
    if {"instruction", "output"} <= names:
        return "alpaca", ("instruction", "input", "output")
    for pair in QA_PAIRS:
        if set(pair) <= names:
            return "qa", pair
    for column in CONVERSATION_COLUMNS:
        turns = first.get(column)
        if column in names and isinstance(turns, list) and turns and isinstance(turns[0], dict):
            if {"role", "content"} <= set(turns[0]):
                return "messages", (column,)
            if any(set(keys) <= set(turns[0]) for keys in SHAREGPT_KEYS):
                return "sharegpt", (column,)
    if "text" in names:
        return "plain_text", ("text",)
    return "unknown", ()


def describe(kind: str, columns: tuple[str, ...]) -> str:
    return SHOWN.get(kind, kind).format(*columns)


def _turn(message: dict) -> dict:
    for role_key, content_key in (("role", "content"), *SHAREGPT_KEYS):
        if role_key in message and content_key in message:
            role = str(message[role_key])
            return {"role": SHAREGPT_ROLES.get(role.lower(), role.lower()), "content": message[content_key]}
    raise DataError(f"a turn with keys {', '.join(message)}: expected role/content or from/value")


def to_messages(row: dict, kind: str, columns: tuple[str, ...]) -> list[dict]:
    """One row as a conversation (aitraining's conversions: Alpaca's input joined to the instruction)."""
    if kind == "alpaca":
        instruction, text = row.get("instruction") or "", row.get("input") or ""
        turns = [{"role": "user", "content": f"{instruction}\n\nInput: {text}" if text else instruction}]
        return turns + ([{"role": "assistant", "content": row["output"]}] if row.get("output") else [])
    if kind == "qa":
        return [{"role": role, "content": row[column]} for role, column in zip(("user", "assistant"), columns)
                if row.get(column)]
    return [_turn(message) for message in row[columns[0]]]


def convert(dataset: "Dataset", kind: str, columns: tuple[str, ...], extension: int, seed: int) -> "Dataset":
    """A dataset of one `messages` column; with extension N > 1 every N single-turn rows become one conversation."""
    from datasets import Dataset

    conversations = [to_messages(row, kind, columns) for row in dataset]
    if extension > 1 and kind in ("alpaca", "qa"):
        order = list(range(len(conversations)))
        random.Random(seed).shuffle(order)
        conversations = [[turn for index in order[start:start + extension] for turn in conversations[index]]
                         for start in range(0, len(order), extension)]
    return Dataset.from_dict({"messages": conversations})


def settings_for(params: LLMTrainingParams, kind: str, columns: tuple[str, ...], source: str) -> tuple[dict, str]:
    """(the settings that train on the converted rows, the plan's note)."""
    shown = describe(kind, columns)
    if kind == "unknown":
        raise DataError(f"auto_convert_dataset: {source} is in none of the formats it converts (Alpaca instruction/"
                        "output, Q&A such as question/answer, ShareGPT or messages conversations, prompt/chosen/"
                        "rejected, text); name the columns with --text-column (and --chat-template), or rename them")
    if kind == "plain_text":
        return {"text_column": "text"}, f"data: auto_convert_dataset: {source} is {shown}; trained as it is."
    if kind == "preference":
        update = {name: value for name, value in (("prompt_text_column", "prompt"), ("text_column", "chosen"),
                                                  ("rejected_text_column", "rejected"))
                  if name not in params.model_fields_set or getattr(params, name) is None}
        return update, (f"data: auto_convert_dataset: {source} holds {shown}; columns "
                        + ", ".join(f"{key}={value}" for key, value in update.items()) + ".")
    template = params.chat_template or "tokenizer"
    joined = (f", every {params.conversation_extension} examples joined into one conversation"
              if params.conversation_extension > 1 and kind in ("alpaca", "qa") else "")
    unused = (f" (conversation_extension={params.conversation_extension} not used: the rows are conversations already)"
              if params.conversation_extension > 1 and not joined else "")
    return ({"text_column": "messages", "chat_template": template, "use_sharegpt_mapping": False},
            f"data: auto_convert_dataset: {source} is {shown}; converted to messages{joined}{unused}, rendered with "
            + ("the tokenizer's chat template" if template == "tokenizer" else f"the {template!r} chat template") + ".")
