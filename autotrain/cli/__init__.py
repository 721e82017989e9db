"""AutoTrain's and aitraining's command-line package: `python -m autotrain.cli.autotrain`."""
