"""The skeleton every trainer runs: tokenizer, data, load, verify, arguments, callbacks, train, save.

A trainer module supplies two functions (interfaces.Recipe), and the job calls `run` with it and the plan's
backend (interfaces.Backend):
- `datasets(params, plan, tokenizer) -> (train, validation or None)`, or with a third item, warnings about the
  data found while tokenizing it (added to the plan's warnings in plan.json);
- `build(params, plan, model, tokenizer, train, validation, arguments, callbacks) -> a transformers Trainer`,
  where `arguments` are the TrainingArguments fields every trainer shares (arguments.py).
Everything else, including which attention packed rows run with and what gets saved, is the same for all.
"""

from __future__ import annotations

import dataclasses

from autotrain_unsloth.checkpoints import Stopped, checkpoint_callback
from autotrain_unsloth.data.job.load import load_tokenizer
from autotrain_unsloth.interfaces import Backend, Recipe
from autotrain_unsloth.outputs.publish import push_to_hub
from autotrain_unsloth.outputs.save import save_outputs
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import Plan
from autotrain_unsloth.trainers.arguments import optimizer_cls_and_kwargs, training_arguments
from autotrain_unsloth.trainers.divergence import Diverged, divergence_guard
from autotrain_unsloth.trainers.float8 import convert_to_float8
from autotrain_unsloth.trainers.state_offload import offload_when_created
from autotrain_unsloth.trainers.throughput import throughput_callback
from autotrain_unsloth.verify import first_step_check, verify_loaded


def signal_name(number: int) -> str:
    import signal

    return signal.Signals(number).name


def run(recipe: Recipe, params: LLMTrainingParams, plan: Plan, backend: Backend) -> None:
    from accelerate import PartialState

    tokenizer = load_tokenizer(params, plan.sequence_length)
    with PartialState().main_process_first():  # rank 0 fills the datasets cache, the other ranks then read it
        train_data, valid_data, *data_warnings = recipe.datasets(params, plan, tokenizer)
    new = tuple(warning for warning in (data_warnings[0] if data_warnings else ()) if warning not in plan.warnings)
    plan = dataclasses.replace(plan, warnings=plan.warnings + new)  # saved in plan.json with `verified`

    model = backend.load_model(params, plan, tokenizer, plan.sequence_length)
    plan = verify_loaded(model, plan, params.project_name, backend.install_packed_attention(plan, model))
    if plan.fp8_linears:
        plan = convert_to_float8(model, plan, params.project_name)

    speed = throughput_callback()
    checkpoints = checkpoint_callback(params, params.project_name)
    guard = divergence_guard(params, plan)  # last: it overrides a save that a callback before it asked for
    trainer = recipe.build(params, plan, model, tokenizer, train_data, valid_data,
                           arguments=training_arguments(params, plan, len(train_data)),
                           callbacks=[first_step_check(plan, params.project_name), speed, checkpoints, guard])
    # Set here, not passed: TRL's preference trainers do not forward optimizer_cls_and_kwargs to the Trainer.
    trainer.optimizer_cls_and_kwargs = optimizer_cls_and_kwargs(trainer.args)
    if plan.optimizer_state_offload:
        offload_when_created(trainer, plan)
    # TRL writes its own model card into the project folder at every checkpoint; ours (outputs/save.py) comes only when
    # training ends well, so that an unfinished run never looks finished.
    trainer.create_model_card = lambda *args, **kwargs: None
    guard.watch(trainer)
    trainer.train(resume_from_checkpoint=plan.resume_from)
    if guard.message:
        raise Diverged(guard.message)
    if checkpoints.stop_signal is not None:
        step = trainer.state.global_step
        raise Stopped(f"stopped by {signal_name(checkpoints.stop_signal)} at step {step}; the checkpoint is "
                      f"{params.project_name}/checkpoint-{step}. Run the same command again to resume from it.",
                      checkpoints.stop_signal)
    guard.check_weights(trainer.model)
    # Rows as the user gave them: counted by the parent, else the split as loaded (the default trainer's are blocks).
    given = (plan.steps or {}).get("rows") or (None if plan.trainer == "default" else len(train_data))
    save_outputs(trainer, params, plan, tokenizer, speed.summary(), rows_given=given)
    push_to_hub(params)
