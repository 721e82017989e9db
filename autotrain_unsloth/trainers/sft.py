"""The `sft` trainer: TRL's SFTTrainer on text or chat-templated conversations.

Examples are packed when the plan says so: laid end to end without padding (TRL's best-fit packing, which
makes the batch padding-free), kept apart by the attention the plan chose. The backend has already attached
LoRA if planned, so TRL never gets a peft_config (stock AutoTrain passes one again on the Unsloth path, which
TRL rejects)."""

from __future__ import annotations

import sys

from autotrain_unsloth.data import load_split, render_text
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import Plan
from autotrain_unsloth.trainers import recipe
from autotrain_unsloth.trainers.arguments import optimizer_cls_and_kwargs


def datasets(params: LLMTrainingParams, plan: Plan, tokenizer):
    train = render_text(load_split(params, params.train_split), params, tokenizer)
    return train, render_text(load_split(params, params.valid_split), params, tokenizer) if params.valid_split else None


def build(params, plan, model, tokenizer, train, valid, arguments, callbacks):
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(**arguments, dataset_text_field="text", max_length=plan.sequence_length, packing=plan.packing)
    return SFTTrainer(model=model, args=config, train_dataset=train, eval_dataset=valid, processing_class=tokenizer,
                      optimizer_cls_and_kwargs=optimizer_cls_and_kwargs(config), callbacks=callbacks)


def train(params: LLMTrainingParams, plan: Plan, backend) -> None:
    recipe.run(sys.modules[__name__], params, plan, backend)
