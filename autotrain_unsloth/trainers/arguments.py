"""The TrainingArguments every trainer shares, from params and plan (AutoTrain's configure_training_args)."""

from __future__ import annotations

from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import Plan


def logging_steps(params: LLMTrainingParams, rows: int, batch_size: int) -> int:
    """AutoTrain's rule for logging_steps=-1: a fifth of the steps of one pass, between 1 and 25."""
    if params.logging_steps > 0:
        return params.logging_steps
    return max(1, min(25, int(0.2 * rows / batch_size)))


def training_arguments(params: LLMTrainingParams, plan: Plan, rows: int) -> dict:
    """The fields every trainer shares. Evaluation and saving follow the plan (plan/rules.py, save_policy)."""
    # the plan's batch settings: lowered for the data where left at their defaults (schedule.py), smaller micro-batches
    # to fit memory (fit.py)
    batch_size, accumulation = plan.batch_size, plan.gradient_accumulation
    return dict(
        output_dir=params.project_name,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        learning_rate=params.lr,
        num_train_epochs=params.epochs,
        max_steps=params.max_steps,
        eval_strategy=plan.eval_strategy,
        save_strategy=plan.save_strategy,
        load_best_model_at_end=plan.eval_strategy != "no" and plan.eval_strategy == plan.save_strategy,
        save_total_limit=params.save_total_limit,
        logging_steps=logging_steps(params, rows, batch_size),
        logging_first_step=True,
        logging_nan_inf_filter=False,  # a nan loss is logged as nan, not replaced; divergence.py stops the run
        gradient_accumulation_steps=accumulation,
        report_to=[] if params.log == "none" else [params.log],
        auto_find_batch_size=params.auto_find_batch_size,
        lr_scheduler_type=params.scheduler,
        optim=plan.optimizer,  # the plan may run adamw_8bit as torchao's AdamW8bit
        warmup_steps=params.warmup_ratio,  # transformers 5: a float below 1 is a share of the steps
        weight_decay=params.weight_decay,
        max_grad_norm=params.max_grad_norm,
        # Stock AutoTrain never passes the seed to the Trainer; the data order then ignores --seed.
        seed=params.seed,
        data_seed=params.seed,
        # The Unsloth backend applies its own checkpointing when loading; "on" is the transformers kind.
        gradient_checkpointing=plan.gradient_checkpointing == "on",
        gradient_checkpointing_kwargs={"use_reentrant": False} if plan.gradient_checkpointing == "on" else None,
        bf16=plan.autocast == "bf16",
        fp16=plan.autocast == "fp16",
        use_cpu=plan.device == "cpu",
        ddp_find_unused_parameters=False if plan.num_processes > 1 else None,
        remove_unused_columns=False,
        disable_tqdm=False,
        include_num_input_tokens_seen="non_padding",  # for tokens/s in run_summary.json
        use_liger_kernel=plan.liger,  # the Trainer patches the model's modules when it is built
    )


def optimizer_cls_and_kwargs(args) -> tuple[type, dict] | None:
    """The Trainer's `optimizer_cls_and_kwargs`: torchao's AdamW8bit compiled once for adamw_torch_8bit
    (trainers/torchao_adamw.py); None otherwise, and the Trainer builds args.optim as usual."""
    if args.optim != "adamw_torch_8bit":
        return None
    from autotrain_unsloth.trainers.torchao_adamw import transformers_cls_and_kwargs

    return transformers_cls_and_kwargs(args)
