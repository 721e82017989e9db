"""autotrain-unsloth: AutoTrain-compatible LLM fine-tuning that takes Unsloth's fast path when it can,
and says exactly what ran."""

__version__ = "0.1.0"

from autotrain_unsloth.params import LLMTrainingParams  # noqa: E402
from autotrain_unsloth.project import AutoTrainProject  # noqa: E402

__all__ = ["LLMTrainingParams", "AutoTrainProject", "__version__"]
