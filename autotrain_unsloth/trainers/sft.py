"""The `sft` trainer: TRL's SFTTrainer on text or chat-templated conversations.

Examples are packed when the plan says so (AutoTrain always packs; we pack only where the attention keeps
examples apart). The backend has already attached LoRA if planned, so TRL never gets a peft_config
(stock AutoTrain passes one again on the Unsloth path, which TRL rejects)."""

from __future__ import annotations

from autotrain_unsloth.data import block_size_for, load_split, load_tokenizer, render_text
from autotrain_unsloth.outputs import save_outputs
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import Plan
from autotrain_unsloth.trainers.arguments import optimizer_cls_and_kwargs, training_arguments
from autotrain_unsloth.trainers.throughput import throughput_callback
from autotrain_unsloth.verify import checkpointing_check, verify_loaded


def train(params: LLMTrainingParams, plan: Plan, backend) -> None:
    from trl import SFTConfig, SFTTrainer

    tokenizer = load_tokenizer(params)
    block_size = block_size_for(params, tokenizer)
    train_data = render_text(load_split(params, params.train_split), params, tokenizer)
    valid_data = render_text(load_split(params, params.valid_split), params, tokenizer) if params.valid_split else None

    model = backend.load_model(params, plan, tokenizer, block_size)
    plan = verify_loaded(model, plan, params.project_name, backend.install_packed_attention(plan, model))

    speed = throughput_callback()
    config = SFTConfig(**training_arguments(params, plan, len(train_data), valid_data is not None),
                       dataset_text_field="text", max_length=block_size, packing=plan.packing)
    trainer = SFTTrainer(model=model, args=config, train_dataset=train_data, eval_dataset=valid_data,
                         processing_class=tokenizer, optimizer_cls_and_kwargs=optimizer_cls_and_kwargs(config),
                         callbacks=[checkpointing_check(plan, params.project_name), speed])
    trainer.train()
    save_outputs(trainer, params, plan, tokenizer, speed.summary())
