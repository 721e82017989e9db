"""`python -m autotrain.trainers.clm --training_config <project>/training_params.json`: the job AutoTrain
launches, run by autotrain-unsloth's job (autotrain_unsloth/trainers/clm/__main__.py)."""

import sys

from autotrain_unsloth.trainers.clm.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
