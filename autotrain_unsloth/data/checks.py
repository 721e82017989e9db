"""The user's data files checked before anything is written or loaded, each problem one sentence naming the
file, the line (as an editor numbers it) or row, the column, and the fix: bytes that are not UTF-8, a JSON line
that does not parse, an empty file, a missing column, cells (or turns) that are empty or only whitespace (all of them
counted), a number where text belongs, a malformed conversation, a preference pair whose answers are the same."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autotrain_unsloth.data.conversations import conversation, is_chat, looks_like_conversation
from autotrain_unsloth.data.files import DataError, data_format
from autotrain_unsloth.json_text import parse_json
from autotrain_unsloth.params import LLMTrainingParams

if TYPE_CHECKING:
    from datasets import Dataset


def check_file(path: str) -> None:
    kind = data_format(path)
    if kind == "parquet":
        return  # binary: the reader's own error names the file
    lines = 0  # that hold anything
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):  # line by line: a data file can be larger than memory
            try:
                text = line.decode("utf-8-sig" if number == 1 else "utf-8")  # a byte-order mark is fine: the readers skip it
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}: line {number}: not UTF-8 text (byte 0x{line[exc.start]:02x} at column "
                                f"{exc.start + 1}); save the file as UTF-8") from exc
            lines += bool(text.strip())
            if path.endswith(".jsonl") and text.strip():
                row = parse_json(text, path, "fix or remove the line", DataError, line=number)
                if not isinstance(row, dict):
                    raise DataError(f"{path}: line {number}: a JSON line must be an object of columns, like "
                                    '{"text": "..."}')
    if not lines:
        raise DataError(f"{path}: the file is empty; give "
                        + ("a header line and one line per example" if kind == "csv" else "one example per line"))
    if kind == "csv" and lines == 1:
        raise DataError(f"{path}: only a header line, no examples; give one line per example below it")
    with open(path, "rb") as f:
        array = path.endswith(".json") and f.read(64).removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"["
    if array:
        with open(path, encoding="utf-8-sig") as f:
            parse_json(f.read(), path, "write one JSON array of row objects, or JSON lines in a .jsonl file", DataError)


def is_blank(value: Any) -> bool:
    """An empty cell: missing, no characters but whitespace, or an empty list of messages."""
    return value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, list) and not value)


def row_name(path: str, index: int) -> str:
    """How an editor finds row `index` (0-based): csv has a header line; JSON lines are one row a line."""
    kind = data_format(path)
    return f"line {index + 2}" if kind == "csv" else f"line {index + 1}" if path.endswith(".jsonl") else f"row {index + 1}"


def check_rows(dataset: "Dataset", params: LLMTrainingParams, path: str, columns: dict[str, str]) -> None:
    """columns: setting name -> the column it names."""
    for field, column in columns.items():
        if column not in dataset.column_names:
            raise DataError(f"{path}: no column {column!r} ({field}); columns are {', '.join(dataset.column_names)}. "
                            f"Pass --{field.replace('_', '-')} <name> or column_mapping in YAML.")
    if len(dataset) == 0:
        raise DataError(f"{path}: has no rows")
    chat = is_chat(params)
    for field, column in columns.items():
        blank: list[int] = []  # rows whose cell, or a user or assistant turn in it, is empty or only whitespace
        for index, value in enumerate(dataset[column]):
            where = f"{path}: {row_name(path, index)}: column {column!r}"
            if is_blank(value):
                blank.append(index)
            elif chat and not (field == "prompt_text_column" and isinstance(value, str)):
                if not (isinstance(value, str) and params.trainer in ("dpo", "orpo")
                        and not value.lstrip().startswith(("[", "{"))):  # a plain answer to the prompt column
                    if any(message["role"] != "system" and is_blank(message["content"])
                           for message in conversation(value, where, params)):
                        blank.append(index)
            elif not isinstance(value, str):
                raise DataError(f"{where} holds {type(value).__name__} {str(value)[:40]!r}, not text; quote it, or "
                                "set --chat-template if the column holds conversations")
            elif index == 0 and looks_like_conversation(value):
                raise DataError(f"{where} holds a conversation as JSON text ({value[:40]}...), which would train as "
                                "that literal text: set --chat-template (tokenizer, chatml, ...) to render it as a "
                                "conversation, or give plain text")
        if blank:
            numbers = [row_name(path, index).split()[-1] for index in blank]
            what = ("has a user or assistant turn that is" if chat and field != "prompt_text_column" else "is")
            kind = row_name(path, 0).split()[0] + ("s" if len(blank) > 1 else "")
            raise DataError(f"{path}: {row_name(path, blank[0])}: column {column!r} ({field}) {what} empty or only "
                            f"whitespace in {len(blank)} of {len(dataset)} rows ({kind} {', '.join(numbers[:10])}"
                            f"{', ...' if len(blank) > 10 else ''}); remove those rows or fill them")
    if params.trainer in ("dpo", "orpo", "reward"):
        rejected = dataset[params.rejected_text_column]
        for index, chosen in enumerate(dataset[params.text_column]):
            if chosen == rejected[index]:
                raise DataError(f"{path}: {row_name(path, index)}: the chosen answer ({params.text_column!r}) equals "
                                f"the rejected one ({params.rejected_text_column!r}), so there is no preference to "
                                "learn; remove the row or fix it")
