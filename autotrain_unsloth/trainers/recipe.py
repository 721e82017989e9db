"""The skeleton every trainer runs: tokenizer, data, load, verify, arguments, callbacks, train, save.

A trainer module supplies two functions and calls `run`:
- `datasets(params, plan, tokenizer) -> (train, validation or None)`;
- `build(params, plan, model, tokenizer, train, validation, arguments, callbacks) -> a transformers Trainer`,
  where `arguments` are the TrainingArguments fields every trainer shares (arguments.py).
Everything else, including which attention packed rows run with and what gets saved, is the same for all.
"""

from __future__ import annotations

from autotrain_unsloth.data import load_tokenizer
from autotrain_unsloth.outputs import save_outputs
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import Plan
from autotrain_unsloth.trainers.arguments import optimizer_cls_and_kwargs, training_arguments
from autotrain_unsloth.trainers.throughput import throughput_callback
from autotrain_unsloth.verify import checkpointing_check, verify_loaded


def run(recipe, params: LLMTrainingParams, plan: Plan, backend) -> None:
    from accelerate import PartialState

    tokenizer = load_tokenizer(params, plan.sequence_length)
    with PartialState().main_process_first():  # rank 0 fills the datasets cache, the other ranks then read it
        train_data, valid_data = recipe.datasets(params, plan, tokenizer)

    model = backend.load_model(params, plan, tokenizer, plan.sequence_length)
    plan = verify_loaded(model, plan, params.project_name, backend.install_packed_attention(plan, model))

    speed = throughput_callback()
    trainer = recipe.build(params, plan, model, tokenizer, train_data, valid_data,
                           arguments=training_arguments(params, plan, len(train_data)),
                           callbacks=[checkpointing_check(plan, params.project_name), speed])
    # Set here, not passed: TRL's preference trainers do not forward optimizer_cls_and_kwargs to the Trainer.
    trainer.optimizer_cls_and_kwargs = optimizer_cls_and_kwargs(trainer.args)
    trainer.train()
    save_outputs(trainer, params, plan, tokenizer, speed.summary())
