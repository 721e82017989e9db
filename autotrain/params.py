"""`from autotrain.params import LLMTrainingParams` (aitraining's spelling)."""

from autotrain_unsloth.params import LLMTrainingParams

__all__ = ["LLMTrainingParams"]
