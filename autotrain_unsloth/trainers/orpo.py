"""The `orpo` trainer: TRL's ORPOTrainer (kept under trl.experimental in TRL 1.x) on prompt / chosen /
rejected (data/job/preference.py), beta = dpo_beta (as in aitraining), block_size as the maximum length. No reference
model: ORPO's odds-ratio term is computed from the policy alone."""

from __future__ import annotations

from autotrain_unsloth.trainers.dpo import datasets  # noqa: F401  (the same preference rows)


def build(params, plan, model, tokenizer, train, valid, arguments, callbacks):
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    config = ORPOConfig(**arguments, beta=params.dpo_beta, max_length=plan.sequence_length,
                        max_completion_length=params.max_completion_length)
    return ORPOTrainer(model=model, args=config, train_dataset=train, eval_dataset=valid, processing_class=tokenizer,
                       callbacks=callbacks)
