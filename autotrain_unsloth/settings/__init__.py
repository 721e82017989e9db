"""The settings' own code, around the one model of them (`autotrain_unsloth.params.LLMTrainingParams`).

defaults.py       aitraining's defaults (the `aitraining` command, the shared import paths) vs AutoTrain's
rules.py          contradictions between settings, floats out of range, settings that will not be used
sections.py       the sections of `--help` and docs/params.md, every setting in exactly one
trainer_names.py  the optimizers and schedulers a setting may name
aitraining_fields.py, aitraining_settings.py   aitraining's settings: those implemented, the rest at defaults
foreign_names.py  AutoTrain's and aitraining's other spellings of a setting, and unknown ones (closest suggested)
config.py         `--config run.yml`: AutoTrain's YAML format, mapped onto the settings
Nothing is imported here: params.py imports these modules, and config.py imports params.py.
"""
