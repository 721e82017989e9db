"""`aitraining --config run.yml`: AutoTrain's YAML format, mapped onto LLMTrainingParams.

    task: llm-sft                  # llm | llm-sft | llm-generic (-> default) | llm-dpo | llm-orpo | llm-reward
    base_model: ./my-llama         # -> model
    project_name: my-run
    log: tensorboard
    backend: local
    data:
      path: ./data                 # -> data_path
      train_split: train
      valid_split: null
      chat_template: null
      column_mapping: {text_column: text}
    params: {peft: true, quantization: int4, unsloth: true, ...}   # any LLMTrainingParams field, applied last
    hub: {username: ${HF_USERNAME}, token: ${HF_TOKEN}, push_to_hub: false}

Unknown keys at any level are errors that name the key. The `aitraining` command fills the settings not
given with aitraining's defaults, `autotrain` with AutoTrain's (defaults.py); `params: {defaults: ...}` chooses.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from autotrain_unsloth.errors import UserError
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.settings.foreign_names import unknown_keys

TOP_KEYS = {"task", "base_model", "project_name", "log", "backend", "data", "params", "hub"}
DATA_KEYS = {"path", "train_split", "valid_split", "chat_template", "column_mapping"}
HUB_KEYS = {"username", "token", "push_to_hub"}
COLUMN_KEYS = {"text_column", "prompt_text_column", "rejected_text_column"}
TASK_TRAINERS = {"llm": None, "llm-generic": "default", "llm-default": "default", "llm-sft": "sft",
                 "llm-dpo": "dpo", "llm-orpo": "orpo", "llm-reward": "reward"}


class ConfigError(UserError, ValueError):
    """The YAML file cannot be used; the message names the key and the fix."""


def params_from_config(config: dict, source: str = "config", defaults: str = "autotrain") -> tuple[LLMTrainingParams, str]:
    """(params, backend) from a parsed AutoTrain YAML document."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: expected a mapping of keys (task, base_model, project_name, data, params, ...)")
    _only(config, TOP_KEYS, source)
    missing = [key for key in ("task", "base_model", "project_name", "backend", "data") if key not in config]
    if missing:
        raise ConfigError(f"{source}: missing required key(s): {', '.join(missing)}")
    task = config["task"]
    if task not in TASK_TRAINERS:
        raise ConfigError(f"{source}: task {task!r} is not an LLM task; use one of {', '.join(TASK_TRAINERS)}")
    data = config["data"] or {}
    _only(data, DATA_KEYS, f"{source}: data")
    if "path" not in data:
        raise ConfigError(f"{source}: data.path is required (a folder with train.csv/.jsonl, or a Hub dataset id)")
    columns = data.get("column_mapping") or {}
    _only(columns, COLUMN_KEYS, f"{source}: data.column_mapping")
    hub = config.get("hub") or {}
    _only(hub, HUB_KEYS, f"{source}: hub")

    values: dict = {"model": config["base_model"], "project_name": config["project_name"], "data_path": data["path"],
                    "defaults": defaults}
    if TASK_TRAINERS[task]:
        values["trainer"] = TASK_TRAINERS[task]
    for key in ("train_split", "valid_split", "chat_template"):
        if key in data:
            values[key] = data[key]
    if "log" in config:
        values["log"] = config["log"]
    values.update(columns)
    # An unset "${VAR}" matters only where it is used: username and token only when pushing to the Hub.
    pushing = str(hub.get("push_to_hub", False)).strip().lower() in ("true", "1", "yes")
    for key, value in hub.items():
        resolved = _resolve_env(value, f"{source}: hub.{key}", required=pushing or key == "push_to_hub")
        if resolved is not _UNSET:
            values[key] = resolved
    settings = config.get("params") or {}
    unknown = unknown_keys(settings, LLMTrainingParams.model_fields)
    if unknown:
        raise ConfigError(f"{source}: params: {'; '.join(unknown).replace(' not used', '')}")
    values.update(settings)
    return LLMTrainingParams(**values), config["backend"]


def load_config(path: str, defaults: str = "autotrain") -> tuple[LLMTrainingParams, str]:
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    with open(path) as f:
        try:
            document = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    return params_from_config(document, path, defaults)


def run_config(path: str, dry_run: bool = False, defaults: str = "autotrain") -> int:
    from autotrain_unsloth.project import AutoTrainProject

    params, backend = load_config(path, defaults)
    project = AutoTrainProject(params=params, backend=backend, process=True)
    if dry_run:
        project.plan()
        return 0
    return project.create()


def _only(section: dict, allowed: set, where: str) -> None:
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


_UNSET = object()


def _resolve_env(value: Any, where: str, required: bool = True) -> Any:
    """AutoTrain's "${VAR}" values, read from the environment; _UNSET for an unset one that is not required."""
    if not isinstance(value, str):
        return value
    match = re.fullmatch(r"\$\{(\w+)\}", value.strip())
    if not match:
        return value
    if match.group(1) not in os.environ:
        if not required:
            return _UNSET
        raise ConfigError(f"{where}: environment variable {match.group(1)} is not set (it is needed with push_to_hub: true)")
    return os.environ[match.group(1)]
