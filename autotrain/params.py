"""`from autotrain.params import LLMTrainingParams` (aitraining's and AutoTrain's spelling): aitraining's defaults,
as `autotrain.trainers.clm.params`."""

from autotrain.trainers.clm.params import LLMTrainingParams

__all__ = ["LLMTrainingParams"]
