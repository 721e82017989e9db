"""The training split counted as the job will see it, for the plan's step schedule (plan/schedule.py): rows
given, tokens, and sequences after packing. The parent runs this after preparing the data, with the tokenizer,
chat template and sequence length of the plan, tokenizing as the trainers do and packing with TRL's own
packer, then plans again with the counts in the environment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotrain_unsloth.data.conversations import is_chat
from autotrain_unsloth.data.job.blocks import to_blocks
from autotrain_unsloth.data.job.load import load_split, load_tokenizer
from autotrain_unsloth.data.job.text import render_text
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import Plan

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase


def count_training_data(params: LLMTrainingParams, plan: Plan) -> dict:
    """{"rows", "tokens", "sequences", "sequence_length", "packing"}; tokens is None for preference pairs."""
    length = plan.sequence_length
    tokenizer = load_tokenizer(params, length)
    data = load_split(params, params.train_split)
    counts = {"rows": len(data), "sequence_length": length, "packing": plan.packing}
    if plan.trainer == "default":
        blocks = to_blocks(render_text(data, params, tokenizer), tokenizer, length, params.add_eos_token)
        return {**counts, "tokens": sum(len(ids) for ids in blocks["input_ids"]), "sequences": len(blocks)}
    if plan.trainer != "sft":
        return {**counts, "tokens": None, "sequences": len(data)}  # one chosen/rejected pair a sequence
    lengths = [min(n, length) for n in sft_lengths(data, params, tokenizer)]
    if not plan.packing:
        return {**counts, "tokens": sum(lengths), "sequences": len(lengths)}
    from datasets import Dataset
    from trl.data_utils import pack_dataset

    packed = pack_dataset(Dataset.from_dict({"input_ids": [[0] * n for n in lengths]}), length, "bfd")
    return {**counts, "tokens": sum(lengths), "sequences": len(packed)}


def sft_lengths(data: "Dataset", params: LLMTrainingParams, tokenizer: "PreTrainedTokenizerBase") -> list[int]:
    """Tokens of each example: conversations as trainers/sft.py tokenizes them, text with the EOS TRL appends."""
    if is_chat(params):
        from autotrain_unsloth.trainers.sft import tokenized_conversations

        return [len(ids) for ids in tokenized_conversations(data, params, tokenizer)["input_ids"]]
    texts = render_text(data, params, tokenizer)["text"]
    return [len(ids) for ids in tokenizer([text + (tokenizer.eos_token or "") for text in texts])["input_ids"]]
