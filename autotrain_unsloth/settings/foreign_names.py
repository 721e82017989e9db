"""Setting names that other tools use and this package does not: AutoTrain's older names (pointed to today's),
aitraining's own settings (aitraining_settings.py), and unknown ones (the closest setting suggested)."""

from __future__ import annotations

import difflib

from autotrain_unsloth.settings.aitraining_settings import is_aitraining_only

__all__ = ["RENAMED_KEYS", "is_aitraining_only", "unknown_keys"]

# Names that older AutoTrain releases used (issue autotrain-advanced#157): point users to today's name.
RENAMED_KEYS = {
    "evaluation_strategy": "eval_strategy",
    "use_peft": "peft",
    "use_int4": "quantization",
    "use_int8": "quantization",
    "learning_rate": "lr",
    "train_batch_size": "batch_size",
    "num_train_epochs": "epochs",
}


def unknown_keys(data: dict, fields: dict) -> list[str]:
    """A sentence for each key that is no setting of this backend's, AutoTrain's or aitraining's."""
    notes = []
    for key in data:
        if key in fields or key in RENAMED_KEYS or is_aitraining_only(key):
            continue
        close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else "; see `aitraining llm --help` for the settings"
        notes.append(f"unknown setting {key!r} not used{hint}")
    return notes
