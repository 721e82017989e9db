"""The `reward` trainer: TRL's RewardTrainer on chosen / rejected (data/job/preference.py), training a sequence
classifier with one output, the score (the backend loads it so, with the pad token set). Pairs longer than
block_size are dropped by TRL, as in AutoTrain; the job says how many."""

from __future__ import annotations

from autotrain_unsloth.distributed import say
from autotrain_unsloth.trainers.dpo import datasets  # noqa: F401  (the same preference rows, without a prompt)


def build(params, plan, model, tokenizer, train, valid, arguments, callbacks):
    from trl import RewardConfig, RewardTrainer

    config = RewardConfig(**arguments, max_length=plan.sequence_length)
    trainer = RewardTrainer(model=model, args=config, train_dataset=train, eval_dataset=valid,
                            processing_class=tokenizer, callbacks=callbacks)
    # trl types train_dataset as any dataset a Trainer can hold; here it is the map-style Dataset given, filtered.
    dropped = len(train) - len(trainer.train_dataset)  # type: ignore[arg-type]
    if dropped:
        say(f"reward: {dropped} of {len(train)} pairs are longer than {plan.sequence_length} tokens and were dropped "
            "(--block-size to keep them)")
    return trainer
