"""Data preparation and rendering on real files and a real tokenizer."""

from __future__ import annotations

import json
import os

import pytest
from datasets import Dataset

from autotrain_unsloth.data.files import DataError
from autotrain_unsloth.data.job.blocks import to_blocks
from autotrain_unsloth.data.job.load import load_tokenizer
from autotrain_unsloth.data.job.text import render_text
from autotrain_unsloth.data.prepare.local_data import prepare_local_data
from autotrain_unsloth.params import LLMTrainingParams


def write_csv(path, rows):
    with open(path, "w") as f:
        f.write("text,other\n" + "".join(f'"{row}",x\n' for row in rows))


def test_prepare_keeps_validation_and_uses_autotrain_columns(in_tmp):
    os.makedirs("data")
    write_csv("data/train.csv", ["a b c", "d e f"])
    write_csv("data/valid.csv", ["g h i"])
    params = prepare_local_data(LLMTrainingParams(data_path="data", valid_split="valid", project_name="p"))
    assert params.data_path == os.path.join("p", "autotrain-data")
    assert (params.text_column, params.valid_split) == ("autotrain_text", "validation")
    from datasets import load_from_disk

    saved = load_from_disk(params.data_path)
    assert saved["train"]["autotrain_text"] == ["a b c", "d e f"] and saved["validation"].num_rows == 1


def test_empty_row_is_named_and_nothing_is_written(in_tmp):
    os.makedirs("data")
    with open("data/train.csv", "w") as f:
        f.write("text\nfirst row\n\nthird\n\"\"\n")
    with pytest.raises(DataError, match=r"train.csv: line 4: column 'text' \(text_column\) is empty"):
        prepare_local_data(LLMTrainingParams(data_path="data", project_name="p"))
    assert not os.path.exists("p")


def test_missing_column_names_the_columns(in_tmp):
    os.makedirs("data")
    write_csv("data/train.csv", ["x"])
    with pytest.raises(DataError, match=r"no column 'content' \(text_column\); columns are text, other"):
        prepare_local_data(LLMTrainingParams(data_path="data", text_column="content", project_name="p"))


def test_missing_split_file(in_tmp):
    os.makedirs("data")
    with pytest.raises(DataError, match="no train file"):
        prepare_local_data(LLMTrainingParams(data_path="data", project_name="p"))


CONVERSATION = [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]
SHAREGPT = [{"from": "human", "value": "Capital of France?"}, {"from": "gpt", "value": "Paris."}]


def test_chatml_renders_conversations(models):
    params = LLMTrainingParams(model=models["llama"], chat_template="chatml")
    tokenizer = load_tokenizer(params, 64)
    as_list = render_text(Dataset.from_dict({"text": [CONVERSATION]}), params, tokenizer)["text"][0]
    as_string = render_text(Dataset.from_dict({"text": [json.dumps(CONVERSATION)]}), params, tokenizer)["text"][0]
    assert as_list == as_string  # a CSV cell holding the list as text reads the same
    assert as_list.startswith("<|im_start|>user\nCapital of France?<|im_end|>")
    assert tokenizer.eos_token == "<|im_end|>"


def test_sharegpt_mapping(models):
    params = LLMTrainingParams(model=models["llama"], chat_template="zephyr", use_sharegpt_mapping=True)
    rendered = render_text(Dataset.from_dict({"text": [SHAREGPT]}), params, load_tokenizer(params, 64))
    assert "<|user|>\nCapital of France?" in rendered["text"][0] and "<|assistant|>\nParis." in rendered["text"][0]


def test_sharegpt_without_the_flag_says_which(models):
    params = LLMTrainingParams(model=models["llama"], chat_template="chatml")
    with pytest.raises(DataError, match="row 0 .* ShareGPT keys .* --use-sharegpt-mapping"):
        render_text(Dataset.from_dict({"text": [SHAREGPT]}), params, load_tokenizer(params, 64))


def test_conversations_without_template_are_an_error(models):
    params = LLMTrainingParams(model=models["llama"])
    with pytest.raises(DataError, match="--chat-template"):
        render_text(Dataset.from_dict({"text": [CONVERSATION]}), params, load_tokenizer(params, 64))


def test_tokenizer_template_required_when_asked(models):
    with pytest.raises(DataError, match="has no chat template"):
        load_tokenizer(LLMTrainingParams(model=models["llama"], chat_template="tokenizer"), 64)


def test_blocks(models):
    tokenizer = load_tokenizer(LLMTrainingParams(model=models["llama"]), 64)
    blocks = to_blocks(Dataset.from_dict({"text": ["Question: What is the capital of France?"] * 10}), tokenizer, 16, True)
    assert all(len(ids) == 16 for ids in blocks["input_ids"]) and blocks["labels"] == blocks["input_ids"]
    eos = tokenizer.eos_token_id
    assert sum(ids.count(eos) for ids in blocks["input_ids"]) >= 9


def test_blocks_are_built_in_linear_time_and_keep_the_token_stream(models):
    """50,000 short rows: the old `sum(lists, [])` over the whole dataset took minutes (quadratic); groups of
    rows chained together take seconds. The bound is loose: it separates linear from quadratic, not fast from slow."""
    import itertools
    import time

    tokenizer = load_tokenizer(LLMTrainingParams(model=models["llama"]), 64)
    rows = [f"question {i} has a short answer" for i in range(50_000)]
    started = time.perf_counter()
    blocks = to_blocks(Dataset.from_dict({"text": rows}), tokenizer, 64, add_eos_token=True)
    assert time.perf_counter() - started < 60
    ids = tokenizer([row + tokenizer.eos_token for row in rows[:1000]])["input_ids"]
    stream = list(itertools.chain.from_iterable(ids))
    first_group = blocks.select(range(len(stream) // 64))["input_ids"]
    assert list(itertools.chain.from_iterable(first_group)) == stream[:len(stream) // 64 * 64]
    assert all(len(block) == 64 for block in blocks["input_ids"]) and blocks["labels"] == blocks["input_ids"]
