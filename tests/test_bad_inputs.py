"""Bad input, as a new user gives it: each family ends in one sentence that names the file, the line or row, the
column and the fix, a non-zero exit, no traceback, nothing written, and the token nowhere. Through the real
CLI entry point (in this process: every case fails before a job is launched)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from autotrain_unsloth.cli import main

TOKEN = "hf_bad_input_token_never_shown_987"
GOOD = [{"text": f"hello world number {i}"} for i in range(8)]
CHAT = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]} for _ in range(6)]


def jsonl(rows) -> bytes:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows).encode()


def replaced(rows, index, row):
    rows = list(rows)
    rows[index] = row
    return rows


CHAT_FLAGS = ["--trainer", "sft", "--chat-template", "chatml"]
DATA_CASES = {
    "line 7 not JSON": ({"train.jsonl": jsonl(replaced(GOOD, 6, "{not json"))}, [],
                        "data/train.jsonl: line 7: not valid JSON"),
    "a number as text": ({"train.jsonl": jsonl(replaced(GOOD, 2, {"text": 42}))}, [],
                         "data/train.jsonl: line 3: column 'text' holds int '42', not text"),
    "unknown role": ({"train.jsonl": jsonl(replaced(CHAT, 3, {"messages": [{"role": "wizard", "content": "x"}]}))},
                     CHAT_FLAGS, "data/train.jsonl: line 4: column 'messages': message 1 has role 'wizard'; use one of"),
    "a turn without content": ({"train.jsonl": jsonl(replaced(CHAT, 1, {"messages": [{"role": "user"}]}))}, CHAT_FLAGS,
                               "data/train.jsonl: line 2: column 'messages': message 1 needs 'role' and 'content'"),
    "ShareGPT unknown from": ({"train.jsonl": jsonl([{"conversations": [{"from": "alien", "value": "x"}]}] * 3)},
                              CHAT_FLAGS, "data/train.jsonl: line 1: column 'conversations': ShareGPT messages need 'from'"),
    "not UTF-8 on line 3": ({"train.jsonl": jsonl(GOOD[:2]) + b'{"text": "caf\xe9"}\n' + jsonl(GOOD[2:])}, [],
                            "data/train.jsonl: line 3: not UTF-8 text (byte 0xe9 at column 14); save the file as UTF-8"),
    "an empty jsonl": ({"train.jsonl": b""}, [], "data/train.jsonl: the file is empty"),
    "a 0-byte csv": ({"train.csv": b""}, [], "data/train.csv: the file is empty; give a header line"),
    "an empty text cell": ({"train.csv": b"text\nfirst\n\"\"\n"}, [],
                           "data/train.csv: line 3: column 'text' (text_column) is empty"),
    "cells of only whitespace": ({"train.jsonl": jsonl(replaced(replaced(GOOD, 2, {"text": "   "}), 4, {"text": "\t\n"}))},
                                 [], "data/train.jsonl: line 3: column 'text' (text_column) is empty or only whitespace "
                                     "in 2 of 8 rows (lines 3, 5); remove those rows or fill them"),
    "csv cells of only spaces": ({"train.csv": b'text,n\nfirst,1\n"   ",2\n'}, [],
                                 "data/train.csv: line 3: column 'text' (text_column) is empty or only whitespace in 1 "
                                 "of 2 rows (line 3)"),
    "a csv with only its header": ({"train.csv": b"text\r\n"}, [],
                                   "data/train.csv: only a header line, no examples; give one line per example below it"),
    "a csv cut inside a quote": ({"train.csv": b'text\n"first"\n"sec'}, [],
                                 "data/train.csv: cannot be read (ParserError: Error tokenizing data. C error: EOF inside "
                                 "string starting at row 2)"),
    "an answer of only spaces": ({"train.jsonl": jsonl(replaced(CHAT, 1, {"messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}))}, CHAT_FLAGS,
        "data/train.jsonl: line 2: column 'messages' (text_column) has a user or assistant turn that is empty or only "
        "whitespace in 1 of 6 rows (line 2)"),
}


def run(in_tmp, capsys, model, extra=()) -> tuple[int, str]:
    code = main(["llm", "--train", "--model", model, "--data-path", "data", "--project-name", "bad", "--max-steps", "2",
                 "--token", TOKEN, *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def nothing_holds_the_token(root) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                assert TOKEN.encode() not in f.read(), os.path.join(folder, name)


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_is_one_sentence(in_tmp, capsys, models, case):
    files, flags, words = DATA_CASES[case]
    os.makedirs("data")
    for name, content in files.items():
        (in_tmp / "data" / name).write_bytes(content)
    code, output = run(in_tmp, capsys, models["llama"], flags)
    assert code == 1, output
    assert f"Error: {words}" in output, output
    assert "Traceback" not in output and TOKEN not in output
    assert not os.path.exists("bad")
    nothing_holds_the_token(in_tmp)


def damaged_model(source: str, folder: str, damage: str) -> str:
    shutil.copytree(source, folder)
    if damage == "config":
        with open(os.path.join(folder, "config.json"), "w") as f:
            f.write('{"model_type": "llama",\n')
    elif damage == "weights":
        path = os.path.join(folder, "model.safetensors")
        os.truncate(path, os.path.getsize(path) // 2)
    else:
        for name in os.listdir(folder):
            if name.startswith(("tokenizer", "special_tokens")):
                os.remove(os.path.join(folder, name))
    return folder


@pytest.mark.parametrize("damage, words", [
    ("config", "config.json: line 2: not valid JSON ("),
    ("weights", "model.safetensors: truncated or damaged"),
    ("tokenizer", "has no tokenizer files (tokenizer.json, tokenizer.model, tokenizer_config.json, vocab.json)"),
])
def test_a_damaged_model_folder_is_named_before_loading(in_tmp, capsys, models, data_dir, damage, words):
    assert os.path.samefile(data_dir, "data")  # the fixture writes the good data there
    model = damaged_model(models["llama"], str(in_tmp / "model"), damage)
    code, output = run(in_tmp, capsys, model)
    assert code == 1 and words in output and "Traceback" not in output, output
    assert TOKEN not in output and not os.path.exists("bad")


def test_settings_errors_never_show_the_token(in_tmp, capsys):
    code = main(["llm", "--train", "--token", TOKEN, "--lr", "-1", "--push-to-hub"])
    captured = capsys.readouterr()
    assert code == 2 and "lr" in captured.err and TOKEN not in captured.out + captured.err


def test_a_byte_order_mark_is_read_past(in_tmp, models):
    from autotrain_unsloth.data.prepare.local_data import prepare_local_data
    from autotrain_unsloth.params import LLMTrainingParams

    os.makedirs("data")
    (in_tmp / "data" / "train.jsonl").write_bytes(b"\xef\xbb\xbf" + jsonl(GOOD).replace(b"\n", b"\r\n"))
    prepared = prepare_local_data(LLMTrainingParams(model=models["llama"], data_path="data", project_name="bom"))
    from datasets import load_from_disk

    assert load_from_disk(prepared.data_path)["train"]["autotrain_text"] == [row["text"] for row in GOOD]
