"""AutoTrain's munging, in the process that launches the job: the data path checked before anything is written,
and a local `{data_path}/{split}.csv|.jsonl|...` (or one file) checked row by row and saved as
`{project}/autotrain-data` with AutoTrain's reserved column names. Unlike stock AutoTrain the validation split is
kept, not dropped."""

from __future__ import annotations

import os
import re
import shutil
from typing import TYPE_CHECKING, Optional

from autotrain_unsloth.data.checks import check_file, check_rows
from autotrain_unsloth.data.files import (
    DataError,
    accepted,
    data_format,
    find_split_file,
    is_saved_dataset,
    read_data_file,
    reason,
)
from autotrain_unsloth.data.prepare.auto_convert import convert, detect
from autotrain_unsloth.params import LLMTrainingParams

if TYPE_CHECKING:
    from datasets import Dataset

AUTOTRAIN_COLUMNS = {"text_column": "autotrain_text", "prompt_text_column": "autotrain_prompt",
                     "rejected_text_column": "autotrain_rejected_text"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?(:[\w.-]+)?$")


def autotrain_data_dir(params: LLMTrainingParams) -> str:
    return os.path.join(params.project_name, "autotrain-data")


def check_data_path(params: LLMTrainingParams) -> None:
    """Fail early, before anything is written, on a data path that can't be read."""
    path = params.data_path
    if os.path.isdir(path):
        if find_split_file(path, params.train_split) is None and not is_saved_dataset(path):
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


def read_rows(path: str, params: LLMTrainingParams) -> "Dataset":
    try:
        return read_data_file(path, params.text_column)
    except Exception as exc:
        raise DataError(f"{path}: cannot be read ({reason(exc)})") from exc


def local_train_file(params: LLMTrainingParams) -> Optional[str]:
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
        found, found_columns = detect(dataset.column_names, dataset[0] if len(dataset) else {}, params.trainer)
        if found in ("alpaca", "qa", "messages", "sharegpt"):
            dataset = convert(dataset, found, found_columns, params.conversation_extension, params.seed)
    columns = {name: getattr(params, name) for name in AUTOTRAIN_COLUMNS if getattr(params, name)}
    check_rows(dataset, params, path, columns)
    dataset = dataset.select_columns(list(columns.values()))
    return dataset.rename_columns({column: AUTOTRAIN_COLUMNS[field] for field, column in columns.items()})
