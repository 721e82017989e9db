"""The user's data files, by extension: what AutoTrain and aitraining take as `data_path` or as the split files
of a `data_path` folder.

.csv; .jsonl and .json (JSON lines, or one JSON array of rows); .parquet; .txt, one text per non-empty line
(the `default` trainer concatenates them into blocks, so a whole document in one file trains as it would whole).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Optional

from autotrain_unsloth.errors import UserError

if TYPE_CHECKING:
    from datasets import Dataset


class DataError(UserError, ValueError):
    """The data cannot be used; the message names the file, row or column and the fix."""


FORMATS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet", ".txt": "text"}


def data_format(path: str) -> Optional[str]:
    """The datasets builder for this file's extension; None for an extension we do not read."""
    return FORMATS.get(os.path.splitext(path)[1].lower())


def find_split_file(folder: str, split: str) -> Optional[str]:
    """`{folder}/{split}.csv`, `.jsonl`, `.json`, `.parquet` or `.txt`, the first that exists."""
    for extension in FORMATS:
        path = os.path.join(folder, split + extension)
        if os.path.isfile(path):
            return path
    return None


def read_data_file(path: str, text_column: str = "text") -> "Dataset":
    """The file's rows; a .txt file's lines land in `text_column`."""
    from datasets import Dataset, load_dataset

    kind = data_format(path)
    if kind == "text":
        with open(path, encoding="utf-8") as f:
            return Dataset.from_dict({text_column: [line.rstrip("\n") for line in f if line.strip()]})
    # The reader's own error line would come before ours, which names the same problem with the file and the fix.
    quiet = logging.getLogger(f"datasets.packaged_modules.{kind}.{kind}")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return load_dataset(kind, data_files=path, split="train")
    finally:
        quiet.setLevel(level)


def is_saved_dataset(path: str) -> bool:
    """A folder that datasets' save_to_disk wrote (the prepared `{project}/autotrain-data`)."""
    return os.path.isfile(os.path.join(path, "dataset_dict.json"))


def accepted() -> str:
    return ", ".join(FORMATS)


def reason(exc: BaseException) -> str:
    """The reader's own words: the first line of the innermost error (datasets wraps the parser's in its own)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no details'}"
