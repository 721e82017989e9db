"""`python -m autotrain.trainers.clm --training_config <project>/training_params.json`: the job AutoTrain and
aitraining launch, run by autotrain-unsloth's job (autotrain_unsloth/trainers/clm/__main__.py); `train(config)`
as aitraining's `autotrain.trainers.clm.__main__.train`, in this process."""

import sys

from autotrain_unsloth.in_process import train
from autotrain_unsloth.trainers.clm.__main__ import main

__all__ = ["main", "train"]

if __name__ == "__main__":
    sys.exit(main())
