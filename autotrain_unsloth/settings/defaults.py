"""Whose defaults fill the settings a user did not give: AutoTrain 0.8.36's or aitraining 0.0.54's.

The `autotrain` command, `autotrain_unsloth.LLMTrainingParams` and stock AutoTrain files take AutoTrain's; the
`aitraining` command, its YAML, aitraining's training_params.json and the import paths both tools share
(`autotrain.trainers.clm.params`, `autotrain.params`) take aitraining's, as aitraining documents them. The choice
is the `defaults` setting, saved with the others; the plan names it and the values it gave.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autotrain_unsloth.params import LLMTrainingParams

AITRAINING_VERSION = "0.0.54"
# aitraining 0.0.54's defaults where they differ from AutoTrain 0.8.36's (chat_template and response_only_loss
# depend on other settings: aitraining_values). save_steps counts only with save_strategy "steps" (checkpoints.py).
AITRAINING = {"model": "google/gemma-3-270m", "log": "wandb", "quantization": None, "merge_adapter": True,
              "save_strategy": "epoch", "save_steps": 500, "resume_from_checkpoint": None}
CHAT_TRAINERS = ("sft", "dpo", "orpo", "reward")


def wandb_installed() -> bool:
    return importlib.util.find_spec("wandb") is not None


def aitraining_values(p: LLMTrainingParams, installed: bool = True) -> dict:
    """aitraining's default for each setting p was not given where it differs from AutoTrain's (with `installed`,
    for this machine: log none when wandb is not installed)."""
    given = p.model_fields_set
    values = {name: value for name, value in AITRAINING.items() if name not in given}
    if installed and values.get("log") == "wandb" and not wandb_installed():
        values["log"] = "none"  # aitraining would fail to start; the plan says why (describe)
    if "chat_template" not in given:
        # aitraining's set_chat_template_defaults: the tokenizer's template for the chat trainers.
        values["chat_template"] = "tokenizer" if p.trainer in CHAT_TRAINERS else None
    template = values.get("chat_template", p.chat_template)
    if "response_only_loss" not in given:
        # aitraining's sft trainer masks the prompt only when a chat template renders the rows.
        values["response_only_loss"] = p.trainer == "sft" and (template is not None or p.use_sharegpt_mapping)
    return values


def apply(p: LLMTrainingParams) -> None:
    """Fill p's settings not given with aitraining's defaults (p.defaults == "aitraining"); they stay "not given"."""
    if p.defaults != "aitraining":
        return
    for name, value in aitraining_values(p, installed=True).items():
        p.__dict__[name] = value  # not through setattr: model_fields_set keeps saying what the user gave


def describe(p: LLMTrainingParams) -> str:
    """One line for the plan: whose defaults, and the values that differ from the other tool's."""
    if p.defaults != "aitraining":
        return "defaults: AutoTrain 0.8.36's for settings not given (--defaults aitraining for aitraining's)"
    shown = {name: getattr(p, name) for name in (*AITRAINING, "chat_template", "response_only_loss")
             if name not in p.model_fields_set and (name != "save_steps" or p.save_strategy == "steps")}
    listed = ", ".join(f"{name}={value!r}" + (" (aitraining's wandb is not installed)" if name == "log" and
                                                  value != AITRAINING["log"] else "") for name, value in shown.items())
    return (f"defaults: aitraining {AITRAINING_VERSION}'s for settings not given ({listed or 'all were given'}; "
            "--defaults autotrain for AutoTrain's)")


# aitraining's class defaults before its rules pick by trainer: what its files hold for a setting never given.
AITRAINING_FIELD_DEFAULTS = {"response_only_loss": True}


def is_default(cls: type[LLMTrainingParams], name: str, value: Any, data: dict) -> bool:
    """Whether a settings file's value is the default of the tool that wrote it (so it counts as not given)."""
    written_by_aitraining = data.get("defaults") == "aitraining" and AITRAINING_FIELD_DEFAULTS.get(name, ...) == value
    return written_by_aitraining or value == default_for(cls, name, data)


def default_for(cls: type[LLMTrainingParams], name: str, data: dict) -> Any:
    """The value setting `name` takes when not given, the others being `data` (a settings file's contents)."""
    if data.get("defaults") != "aitraining":
        return cls.model_fields[name].default
    others = {key: value for key, value in data.items() if key in cls.model_fields and key != name}
    probe = cls.model_construct(_fields_set=set(others), **others)
    return aitraining_values(probe, installed=False).get(name, cls.model_fields[name].default)
