"""Data: from the user's files to the rows a trainer consumes.

Parent side, `prepare_local_data`: AutoTrain's munging. A local `{data_path}/{split}.csv|.jsonl` is checked
row by row and saved as `{project}/autotrain-data` with AutoTrain's reserved column names. Unlike stock
AutoTrain the validation split is kept, not dropped.

Child side, `load_split`, `load_tokenizer`, `render_text`: read the split, set up the tokenizer and its
chat template, and turn conversations into text.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from typing import TYPE_CHECKING

from autotrain_unsloth.chat_templates import TEMPLATES
from autotrain_unsloth.chat_tokens import without_bos
from autotrain_unsloth.conversations import conversation, is_chat, looks_like_conversation
from autotrain_unsloth.data_checks import check_file, check_rows
from autotrain_unsloth.data_files import DataError, accepted, data_format, find_split_file, read_data_file, reason
from autotrain_unsloth.dataset_formats import at_most, convert, detect, settings_for
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.remote_code import trust_remote_code

if TYPE_CHECKING:
    from datasets import Dataset

AUTOTRAIN_COLUMNS = {"text_column": "autotrain_text", "prompt_text_column": "autotrain_prompt",
                     "rejected_text_column": "autotrain_rejected_text"}
GROUP_ROWS = 1000  # rows concatenated together before cutting into blocks (transformers' run_clm default)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?(:[\w.-]+)?$")


# -- parent side -----------------------------------------------------------------------------------------

def autotrain_data_dir(params: LLMTrainingParams) -> str:
    return os.path.join(params.project_name, "autotrain-data")


def check_data_path(params: LLMTrainingParams) -> None:
    """Fail early, before anything is written, on a data path that can't be read."""
    path = params.data_path
    if os.path.isdir(path):
        if find_split_file(path, params.train_split) is None and not _has_saved_dataset(path):
            raise DataError(f"data_path {path!r}: no {params.train_split} file ({accepted()}) in this folder "
                            f"(files: {', '.join(sorted(os.listdir(path))[:10]) or 'none'})")
        return
    if os.path.isfile(path):
        if data_format(path) is None:
            raise DataError(f"data_path {path!r}: a file of a kind this backend does not read; give a {accepted()} "
                            "file, or a folder holding one per split")
        if params.valid_split:
            raise DataError(f"valid_split {params.valid_split!r} needs a folder of split files; data_path {path!r} is "
                            "one file (the training split)")
        return
    if path.startswith((".", "/", "~")) or not _HUB_ID.match(path):
        raise DataError(f"data_path {path!r} does not exist; give a data file ({accepted()}), a folder holding "
                        f"{params.train_split}.<one of those>, or a Hub dataset id")


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
        rows = _read_rows(train_file, params)
        update, note = settings_for(params, *detect(rows.column_names, rows[0] if len(rows) else {}, params.trainer),
                                    train_file)
        return params.model_copy(update=update), (note,)
    template_defaulted = params.defaults == "aitraining" and "chat_template" not in params.model_fields_set
    if train_file is None or ("text_column" in params.model_fields_set and not template_defaulted):
        return params, ()
    rows = _read_rows(train_file, params)
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


def _plain_text_settings(params: LLMTrainingParams, first, train_file: str) -> tuple[LLMTrainingParams, tuple[str, ...]]:
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


def _read_rows(path: str, params: LLMTrainingParams) -> "Dataset":
    try:
        return read_data_file(path, params.text_column)
    except Exception as exc:
        raise DataError(f"{path}: cannot be read ({reason(exc)})") from exc


def local_train_file(params: LLMTrainingParams):
    """The user's local training file, if the data is one (a file, or a folder of split files)."""
    if os.path.isfile(params.data_path):
        return params.data_path
    return find_split_file(params.data_path, params.train_split) if os.path.isdir(params.data_path) else None


def prepared_settings(params: LLMTrainingParams) -> LLMTrainingParams:
    """The settings as prepare_local_data leaves them (the job's settings), without reading or writing data."""
    if local_train_file(params) is None:
        return params
    update = {"data_path": autotrain_data_dir(params), "train_split": "train",
              "valid_split": "validation" if params.valid_split else None}
    update.update({name: AUTOTRAIN_COLUMNS[name] for name in AUTOTRAIN_COLUMNS if getattr(params, name)})
    return params.model_copy(update=update)


def prepare_local_data(params: LLMTrainingParams) -> LLMTrainingParams:
    """AutoTrain's munging for local csv/jsonl files. Returns params pointing at the prepared data.

    Hub ids and already-prepared folders are returned unchanged.
    """
    check_data_path(params)
    train_file = local_train_file(params)
    if train_file is None:
        return params
    files = {"train": train_file}
    if params.valid_split:
        valid_file = find_split_file(params.data_path, params.valid_split)
        if valid_file is None:
            raise DataError(f"valid_split {params.valid_split!r}: no {params.valid_split} file ({accepted()}) in "
                            f"{params.data_path!r}")
        files["validation"] = valid_file

    from datasets import DatasetDict

    splits = DatasetDict({split: _read_checked(path, params) for split, path in files.items()})
    target = autotrain_data_dir(params)
    staging = target + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    splits.save_to_disk(staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return prepared_settings(params)


def _read_checked(path: str, params: LLMTrainingParams) -> "Dataset":
    kind = data_format(path)
    check_file(path)
    try:
        dataset = read_data_file(path, params.text_column)
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as {kind} ({reason(exc)})") from exc
    if params.auto_convert_dataset:
        found, columns = detect(dataset.column_names, dataset[0] if len(dataset) else {}, params.trainer)
        if found in ("alpaca", "qa", "messages", "sharegpt"):
            dataset = convert(dataset, found, columns, params.conversation_extension, params.seed)
    columns = {name: getattr(params, name) for name in AUTOTRAIN_COLUMNS if getattr(params, name)}
    check_rows(dataset, params, path, columns)
    dataset = dataset.select_columns(list(columns.values()))
    return dataset.rename_columns({column: AUTOTRAIN_COLUMNS[field] for field, column in columns.items()})


def _has_saved_dataset(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "dataset_dict.json"))


# -- child side ------------------------------------------------------------------------------------------

def load_split(params: LLMTrainingParams, split: str) -> "Dataset":
    """One split, from prepared data, a local folder of files, or the Hub; cut to aitraining's max_samples."""
    dataset = _read_split(params, split)
    return at_most(dataset, params.max_samples, split == params.train_split) if params.max_samples else dataset


def _read_split(params: LLMTrainingParams, split: str) -> "Dataset":
    from datasets import load_dataset, load_from_disk

    if _has_saved_dataset(params.data_path):
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


def load_tokenizer(params: LLMTrainingParams, max_length: int):
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


def render_text(dataset: "Dataset", params: LLMTrainingParams, tokenizer) -> "Dataset":
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

    def render(row: dict, index: int) -> dict:
        messages = conversation(row[column], f"row {index} of column {column!r}", params)
        # A template that writes the BOS itself, tokenized later by a tokenizer that adds one too, would give two.
        return {"text": without_bos(tokenizer, tokenizer.apply_chat_template(messages, tokenize=False))}

    return dataset.map(render, with_indices=True, remove_columns=dataset.column_names)


def to_blocks(dataset: "Dataset", tokenizer, block_size: int, add_eos_token: bool) -> "Dataset":
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
