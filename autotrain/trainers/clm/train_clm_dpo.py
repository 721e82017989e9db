"""`autotrain.trainers.clm.train_clm_dpo.train(config)`: AutoTrain's and aitraining's dpo entry point, run in the
calling process (autotrain_unsloth/in_process.py); config is LLMTrainingParams or a dict of its settings."""

from autotrain_unsloth.in_process import train as _train


def train(config) -> None:
    _train(config, trainer="dpo")
