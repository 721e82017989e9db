"""`from autotrain.project import AutoTrainProject` (AutoTrain's quickstart)."""

from autotrain_unsloth.project import AutoTrainProject, JobFailed

__all__ = ["AutoTrainProject", "JobFailed"]
