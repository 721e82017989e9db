"""Preference data for the dpo, orpo and reward trainers, with AutoTrain's column rules: text_column is the
chosen answer, rejected_text_column the rejected one, prompt_text_column the prompt (dpo, orpo).

Text rows are used as they are (the trainer adds BOS and EOS). With a chat template, each row is a
conversation: the chosen and rejected cells hold conversations whose last turn is the answer and whose
earlier turns are the prompt (AutoTrain's rule), or plain answers to the prompt column's user turn. The prompt
is rendered with the generation prompt, as at inference, and each answer is the rest of its conversation's
rendering, so prompt + answer is exactly the conversation rendered once.

dpo and orpo keep the last `max_prompt_length` tokens of a prompt and the first `max_completion_length` tokens
of an answer (TRL's DPO and ORPO trainers of this TRL line no longer take these settings), and say how many
rows were cut.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotrain_unsloth.data import checks
from autotrain_unsloth.data.conversations import conversation, is_chat
from autotrain_unsloth.data.files import DataError
from autotrain_unsloth.data.job.chat_tokens import render, without_bos
from autotrain_unsloth.distributed import say
from autotrain_unsloth.params import LLMTrainingParams

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase


# The trainer's field -> the setting naming its column.
SETTINGS = {"chosen": "text_column", "rejected": "rejected_text_column", "prompt": "prompt_text_column"}


def columns(params: LLMTrainingParams) -> dict[str, str]:
    """The trainer's field -> the dataset column holding it."""
    assert params.rejected_text_column is not None  # the settings' rules require it of dpo, orpo and reward
    named = {"chosen": params.text_column, "rejected": params.rejected_text_column}
    if params.trainer in ("dpo", "orpo") and params.prompt_text_column:
        named["prompt"] = params.prompt_text_column
    return named


def check_rows(dataset: "Dataset", params: LLMTrainingParams, split: str) -> None:
    """The checks the project runs on local files (data/checks.py), for data that did not come through them (a Hub
    dataset): a missing or empty column, or a row whose chosen answer equals its rejected one, named by row."""
    named = {SETTINGS[field]: column for field, column in columns(params).items()}
    checks.check_rows(dataset, params, f"{params.data_path} ({split})", named)


def preference_rows(dataset: "Dataset", params: LLMTrainingParams, tokenizer: "PreTrainedTokenizerBase",
                    split: str) -> "Dataset":
    """Rows of prompt / chosen / rejected text (reward: chosen / rejected), as the trainers take them."""
    check_rows(dataset, params, split)
    named = columns(params)
    if is_chat(params):
        rows = dataset.map(lambda row, index: _rendered(row, index, named, params, tokenizer), with_indices=True,
                           remove_columns=dataset.column_names)
    else:
        rows = dataset.select_columns(list(named.values())).rename_columns({v: k for k, v in named.items()})
    if params.trainer in ("dpo", "orpo"):
        rows = _clipped(rows, params, tokenizer, split)
    return rows


def _rendered(row: dict, index: int, named: dict, params: LLMTrainingParams, tokenizer: "PreTrainedTokenizerBase") -> dict:
    where = f"row {index + 1}"
    prompt = row.get(named.get("prompt", ""))
    turns = {}
    for field in ("chosen", "rejected"):
        value = row[named[field]]
        if isinstance(value, str) and prompt is not None and not value.lstrip().startswith(("[", "{")):
            turns[field] = [{"role": "user", "content": prompt}, {"role": "assistant", "content": value}]
        else:
            turns[field] = conversation(value, f"{where} of column {named[field]!r}", params)
            if prompt is not None and len(turns[field]) == 1:
                turns[field] = [{"role": "user", "content": prompt}, *turns[field]]
    if params.trainer == "reward":
        return {field: without_bos(tokenizer, render(tokenizer, turns[field])) for field in ("chosen", "rejected")}
    history = turns["chosen"][:-1]
    if len(history) == 0 or turns["rejected"][:-1] != history:
        raise DataError(f"{where}: the chosen and rejected conversations must share every turn but the last (the "
                        "prompt) and have one before it; give a prompt column or conversations that do")
    prompt_text = render(tokenizer, history, generation_prompt=True)
    answers = {}
    for field in ("chosen", "rejected"):
        whole = render(tokenizer, turns[field])
        if not whole.startswith(prompt_text):
            raise DataError(f"{where}: the chat template renders the prompt differently when an answer follows it, so "
                            "the answer cannot be split off; use a template that renders turn by turn (chatml, ...)")
        answers[field] = whole[len(prompt_text):]
    return {"prompt": without_bos(tokenizer, prompt_text), **answers}


def _clipped(rows: "Dataset", params: LLMTrainingParams, tokenizer: "PreTrainedTokenizerBase", split: str) -> "Dataset":
    limits = {"prompt": params.max_prompt_length}
    if params.max_completion_length:
        limits.update(chosen=params.max_completion_length, rejected=params.max_completion_length)

    def clip(row: dict) -> dict:
        out, cut = {field: row[field] for field in limits}, False
        for field, limit in limits.items():
            ids = tokenizer(row[field], add_special_tokens=False)["input_ids"]
            if len(ids) > limit:
                # A prompt keeps its end (what the answer follows); an answer keeps its start.
                out[field] = tokenizer.decode(ids[-limit:] if field == "prompt" else ids[:limit])
                cut = True
        return {**out, "_cut": cut}

    rows = rows.map(clip)
    cut = sum(rows["_cut"])
    if cut:
        say(f"{params.trainer} ({split}): {cut} of {len(rows)} rows cut to max_prompt_length={params.max_prompt_length}"
            + (f" / max_completion_length={params.max_completion_length}" if params.max_completion_length else "")
            + " tokens")
    return rows.remove_columns("_cut")
