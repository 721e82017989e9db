"""The `default` trainer: causal language modelling on raw text, concatenated and cut into blocks
(continued pretraining). transformers' Trainer; LoRA, if planned, is already on the model."""

from __future__ import annotations

from autotrain_unsloth.data.job.blocks import to_blocks
from autotrain_unsloth.data.job.load import load_split
from autotrain_unsloth.data.job.text import render_text
from autotrain_unsloth.distributed import say
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import Plan


def datasets(params: LLMTrainingParams, plan: Plan, tokenizer):
    def blocks(split):
        return to_blocks(render_text(load_split(params, split), params, tokenizer), tokenizer, plan.sequence_length,
                         params.add_eos_token)

    train = blocks(params.train_split)
    say(f"default trainer: {len(train)} blocks of up to {plan.sequence_length} tokens")
    return train, blocks(params.valid_split) if params.valid_split else None


def build(params, plan, model, tokenizer, train, valid, arguments, callbacks):
    from transformers import Trainer, TrainingArguments, default_data_collator

    args = TrainingArguments(**arguments)
    return Trainer(model=model, args=args, train_dataset=train, eval_dataset=valid, data_collator=default_data_collator,
                   processing_class=tokenizer,
                   callbacks=callbacks)
