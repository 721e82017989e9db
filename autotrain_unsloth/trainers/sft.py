"""The `sft` trainer: TRL's SFTTrainer on text, or on conversations tokenized here with the chat template.

Conversations become token ids before TRL sees them (data/job/chat_tokens.py): one BOS, the template's end-of-turn
tokens and no extra EOS, and with response_only_loss the label -100 outside the assistant's turns. Plain text
goes to TRL as text (it adds EOS).

Examples are packed when the plan says so: laid end to end without padding (TRL's best-fit packing, which
makes the batch padding-free), kept apart by the attention the plan chose. The backend has already attached
LoRA if planned, so TRL never gets a peft_config (stock AutoTrain passes one again on the Unsloth path, which
TRL rejects)."""

from __future__ import annotations

from typing import Any

from autotrain_unsloth.data.conversations import conversation, is_chat
from autotrain_unsloth.data.files import DataError
from autotrain_unsloth.data.job.chat_tokens import IGNORE, tokenize_conversation
from autotrain_unsloth.data.job.load import load_split
from autotrain_unsloth.data.job.text import render_text
from autotrain_unsloth.distributed import say
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import Plan


def datasets(params: LLMTrainingParams, plan: Plan, tokenizer):
    warnings: list[str] = []  # for the plan

    def rows(split: str):
        data = load_split(params, split)
        if not is_chat(params):
            return render_text(data, params, tokenizer)
        tokens = tokenized_conversations(data, params, tokenizer)
        if params.response_only_loss:
            warnings.extend(filter(None, [check_answers_kept(tokens, plan.sequence_length, split)]))
        return tokens

    train = rows(params.train_split)
    return train, rows(params.valid_split) if params.valid_split else None, tuple(warnings)


def tokenized_conversations(data, params: LLMTrainingParams, tokenizer):
    column = params.text_column
    if column not in data.column_names:
        raise DataError(f"{params.data_path}: no column {column!r}; columns are {', '.join(data.column_names)}")

    def tokenize(row: dict, index: int) -> dict:
        where = f"row {index + 1} of column {column!r}"
        return tokenize_conversation(tokenizer, conversation(row[column], where, params), params.response_only_loss,
                                     where)

    tokens = data.map(tokenize, with_indices=True, remove_columns=data.column_names)
    if params.response_only_loss:
        trained = sum(sum(label != -100 for label in labels) for labels in tokens["labels"])
        total = sum(len(ids) for ids in tokens["input_ids"])
        say(f"response_only_loss: {trained:,} of {total:,} tokens ({trained / total:.0%}) are the assistant's and "
            "carry the loss")
    return tokens


def check_answers_kept(tokens, block_size: int, split: str) -> str | None:
    """Under response_only_loss, an example whose answer lies wholly beyond the block size (each example is cut to
    it) or is empty has no token to learn from: all of them is a refusal, some a warning (printed and returned for
    the plan), each with the count and the block size that keeps every answer."""
    firsts = [next((index for index, label in enumerate(labels) if label != IGNORE), None) for labels in tokens["labels"]]
    empty = sum(first is None for first in firsts)
    cut = [first for first in firsts if first is not None and first >= block_size]
    if not empty and not cut:
        return None
    longest = max(len(ids) for ids in tokens["input_ids"])
    keep = (f"--block-size {max(cut) + 1} keeps at least the start of every answer, {longest} (the longest example) "
            "keeps every example whole" if cut else "")
    what = "; ".join(part for part in (
        f"{len(cut)} have their whole answer cut away by block_size {block_size} (the prompt alone fills it)" if cut else "",
        f"{empty} have an empty answer" if empty else "") if part)
    message = (f"response_only_loss ({split} split): {empty + len(cut)} of {len(firsts)} examples have no answer token "
               f"to learn from: {what}; " + (keep + ("; remove the empty answers" if empty else "") if cut
                                             else "remove those rows or fill their answers"))
    if empty + len(cut) == len(firsts):
        raise DataError(message)
    say(f"Warning: {message}.")
    return f"{message}."


def build(params, plan, model, tokenizer, train, valid, arguments, callbacks):
    from trl import SFTConfig, SFTTrainer

    # TRL's default chunked loss reads the output layer's weight directly, past PEFT's trainable rows of added
    # tokens (plan: new_tokens "rows"): the plain loss goes through them. Otherwise loss_type is not passed at all:
    # Unsloth sets its own default (its fused loss), which an explicit value, None included, would override.
    chosen: dict[str, Any] = {"loss_type": "nll"} if plan.new_tokens == "rows" else {}
    if plan.packing:
        _quiet_trl_packing_warning(plan)
    config = SFTConfig(**arguments, dataset_text_field="text", max_length=plan.sequence_length, packing=plan.packing,
                       **chosen)
    return SFTTrainer(model=model, args=config, train_dataset=train, eval_dataset=valid, processing_class=tokenizer,
                      callbacks=callbacks)


class _PackingWarningFilter:
    """TRL warns that packed examples may attend to each other unless flash attention runs. The plan's packed
    attention keeps them apart (position_ids restart per example, and the mask or kernel follows them; checked
    in tests/test_packing.py), so its warning would contradict the plan: it is replaced by one line that says so."""

    def filter(self, record) -> bool:
        return not record.getMessage().startswith("You are using packing, but the attention implementation")


def _quiet_trl_packing_warning(plan: Plan) -> None:
    import logging

    logger = logging.getLogger("trl.trainer.sft_trainer")
    if not any(isinstance(existing, _PackingWarningFilter) for existing in logger.filters):
        logger.addFilter(_PackingWarningFilter())
    say(f"packing: examples kept apart by the plan's packed attention ({plan.packed_attention}); TRL's warning "
        "about flash attention does not apply")
