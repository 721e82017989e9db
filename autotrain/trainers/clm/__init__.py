"""AutoTrain's LLM trainer package: `autotrain.trainers.clm.params`, `train_clm_<trainer>.train(config)`,
`train(config)` (any trainer, in this process) and `python -m autotrain.trainers.clm --training_config ...`."""

from autotrain_unsloth.in_process import train

__all__ = ["train"]
