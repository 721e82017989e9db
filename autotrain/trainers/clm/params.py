"""`from autotrain.trainers.clm.params import LLMTrainingParams` (AutoTrain's spelling)."""

from autotrain_unsloth.params import LLMTrainingParams

__all__ = ["LLMTrainingParams"]
