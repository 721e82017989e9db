"""AutoTrain's import paths, served by autotrain-unsloth.

AutoTrain (autotrain-advanced) and its fork aitraining install the Python package `autotrain`; scripts and
notebooks import `autotrain.project.AutoTrainProject` and `autotrain.trainers.clm.params.LLMTrainingParams`,
and AutoTrain launches `python -m autotrain.trainers.clm --training_config ...`. Installing autotrain-unsloth
provides the same paths, so such code runs unchanged; it replaces autotrain-advanced or aitraining in an
environment (install one of them, not both). Only the LLM task is provided.
"""

from autotrain.trainers.clm.params import LLMTrainingParams
from autotrain_unsloth import __version__
from autotrain_unsloth.project import AutoTrainProject

__all__ = ["AutoTrainProject", "LLMTrainingParams", "__version__"]
