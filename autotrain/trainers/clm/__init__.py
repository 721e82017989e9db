"""AutoTrain's LLM trainer package: `autotrain.trainers.clm.params` and `python -m autotrain.trainers.clm`."""
