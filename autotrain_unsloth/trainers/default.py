"""The `default` trainer: causal language modelling on raw text, concatenated and cut into blocks
(continued pretraining). transformers' Trainer; LoRA, if planned, is already on the model."""

from __future__ import annotations

from autotrain_unsloth.data import block_size_for, load_split, load_tokenizer, render_text, to_blocks
from autotrain_unsloth.outputs import save_outputs
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import Plan
from autotrain_unsloth.trainers.arguments import optimizer_cls_and_kwargs, training_arguments
from autotrain_unsloth.trainers.throughput import throughput_callback
from autotrain_unsloth.verify import checkpointing_check, verify_loaded


def train(params: LLMTrainingParams, plan: Plan, backend) -> None:
    from transformers import Trainer, TrainingArguments, default_data_collator

    tokenizer = load_tokenizer(params)
    block_size = block_size_for(params, tokenizer)
    train_data = to_blocks(render_text(load_split(params, params.train_split), params, tokenizer),
                           tokenizer, block_size, params.add_eos_token)
    valid_data = None
    if params.valid_split:
        valid_data = to_blocks(render_text(load_split(params, params.valid_split), params, tokenizer),
                               tokenizer, block_size, params.add_eos_token)
    print(f"default trainer: {len(train_data)} blocks of up to {block_size} tokens", flush=True)

    model = backend.load_model(params, plan, tokenizer, block_size)
    plan = verify_loaded(model, plan, params.project_name)

    speed = throughput_callback()
    args = TrainingArguments(**training_arguments(params, plan, len(train_data), valid_data is not None))
    trainer = Trainer(model=model, args=args, train_dataset=train_data, eval_dataset=valid_data,
                      data_collator=default_data_collator, processing_class=tokenizer,
                      optimizer_cls_and_kwargs=optimizer_cls_and_kwargs(args),
                      callbacks=[checkpointing_check(plan, params.project_name), speed])
    trainer.train()
    save_outputs(trainer, params, plan, tokenizer, speed.summary())
