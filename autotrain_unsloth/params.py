"""The contract: every setting of a training job, in one pydantic model.

`LLMTrainingParams` keeps all 48 fields of stock AutoTrain's LLM params with their names, types and
defaults, so a stock `training_params.json` or YAML `params:` block loads unchanged. It adds the fields
that AutoTrain lacks (`full_finetuning`, `use_sharegpt_mapping`, `max_steps`, `response_only_loss`, ...; the
speed and memory settings in settings/speed_fields.py, aitraining's in settings/aitraining_fields.py). Unlike stock AutoTrain it
rejects unknown keys (stock silently drops them) and checks the settings against each other: a
contradiction is an error, a setting that will not be used is a warning (see `setting_warnings`).

The CLI flags (cli.py) and the YAML keys (settings/config.py) are generated from this class; nothing else keeps a
list of settings.
"""

from __future__ import annotations

import json
import logging
import os
import re
import typing
from typing import Any, List, Literal, Optional, Union

from pydantic import ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from autotrain_unsloth.data.chat_templates import canonical
from autotrain_unsloth.errors import UserError
from autotrain_unsloth.json_text import parse_json
from autotrain_unsloth.settings import aitraining_settings, defaults
from autotrain_unsloth.settings.aitraining_fields import AitrainingFields
from autotrain_unsloth.settings.foreign_names import RENAMED_KEYS, unknown_keys
from autotrain_unsloth.settings.rules import contradictions, float_problem, unused_settings
from autotrain_unsloth.settings.speed_fields import SpeedFields

PROJECT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,95}")


class SettingsFileError(UserError, ValueError):
    """A training_params.json that cannot be read as settings; the message names the file and the fix."""


class LLMTrainingParams(AitrainingFields, SpeedFields):
    """Settings of one LLM fine-tuning job (AutoTrain's `LLMTrainingParams`, plus Unsloth's choices)."""

    # hide_input_in_errors: a validation error never repeats the input, which may hold the token.
    model_config = ConfigDict(protected_namespaces=(), hide_input_in_errors=True)

    # core
    model: str = Field("gpt2", description="Model to fine-tune: a Hub id or a local folder")
    project_name: str = Field("project-name", description="Output folder, relative to the working directory or "
                              "absolute; its last part (letters, digits, '-', '_', '.') names the Hub repo")
    # data
    data_path: str = Field("data", description="A data file (.csv, .jsonl, .json, .parquet, .txt), a folder holding "
                           "{train_split}.<one of those>, or a Hub dataset id")
    train_split: str = Field("train", description="Training split (file name without extension)")
    valid_split: Optional[str] = Field(None, description="Validation split, if any")
    add_eos_token: bool = Field(True, description="Append the EOS token to each text (default trainer)")
    block_size: Union[int, List[int]] = Field(-1, description="Tokens per training sequence; -1: the tokenizer's "
        "maximum, capped at 1024")
    model_max_length: int = Field(2048, description="Maximum tokenizer length, used when the tokenizer's own is larger")
    padding: Optional[Literal["left", "right"]] = Field("right", description="Padding side")
    # trainer
    trainer: Literal["default", "sft", "reward", "dpo", "orpo"] = Field("default", description="default: causal LM on "
        "raw text; sft: supervised fine-tuning; dpo, orpo: preference tuning on prompt/chosen/rejected; reward: a "
        "reward model (one score) on chosen/rejected")
    use_flash_attention_2: bool = Field(False, description="Use FlashAttention 2 (CUDA only)")
    log: Literal["none", "wandb", "tensorboard"] = Field("none", description="Where to report metrics")
    disable_gradient_checkpointing: bool = Field(False, description="Turn gradient checkpointing off (faster, more memory)")
    logging_steps: int = Field(-1, description="Log every N steps; -1: chosen from the dataset size")
    eval_strategy: Literal["epoch", "steps", "no"] = Field("epoch", description="When to evaluate (with a validation split)")
    save_total_limit: int = Field(1, description="Checkpoints to keep")
    auto_find_batch_size: bool = Field(False, description="Halve the batch size on out-of-memory")
    mixed_precision: Optional[Literal["fp16", "bf16"]] = Field(None, description="fp16, bf16 or none")
    lr: float = Field(3e-5, gt=0, description="Learning rate")
    epochs: int = Field(1, ge=1, description="Training epochs")
    batch_size: int = Field(2, ge=1, description="Per-device batch size")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps spent warming up the learning rate")
    gradient_accumulation: int = Field(4, ge=1, description="Gradient accumulation steps")
    optimizer: str = Field("adamw_torch", description="Optimizer name as transformers knows it (adamw_torch, adamw_8bit, ...)")
    scheduler: str = Field("linear", description="Learning-rate scheduler (linear, cosine, constant, ...)")
    weight_decay: float = Field(0.0, ge=0, description="Weight decay")
    max_grad_norm: float = Field(1.0, description="Gradient clipping norm")
    seed: int = Field(42, description="Random seed (data order, LoRA init, dropout)")
    chat_template: Optional[str] = Field(None, description="Render chat data with this template: tokenizer (the "
        "model's own), chatml, zephyr, llama-3, gemma, mistral, qwen-2.5, phi-3, alpaca, vicuna (and their spellings "
        "llama3, gemma3, ...) or none")
    # peft
    quantization: Optional[Literal["int4", "int8"]] = Field("int4", description="Quantize the frozen base for LoRA: "
        "int4 (QLoRA), int8 or none; used only with --peft")
    target_modules: Optional[str] = Field("all-linear", description="LoRA target modules: comma list, or all-linear")
    merge_adapter: bool = Field(False, description="Merge the LoRA adapter into the base weights after training")
    export_gguf: Optional[Literal["f16", "bf16", "q8_0"]] = Field(None, description="Also write the model as GGUF "
        "(llama.cpp, Ollama): <project>/<project_name>-<type>.gguf; llama, mistral, qwen2, gemma")
    merged_copy: bool = Field(False, description="Also save the adapter merged into the 16-bit base weights in "
        "<project>/merged, beside the adapter")
    peft: bool = Field(False, description="Train a LoRA adapter instead of all weights")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    # dpo / orpo
    model_ref: Optional[str] = Field(None, description="Reference model (dpo without --peft; default: a frozen copy "
        "of the model)")
    dpo_beta: float = Field(0.1, description="DPO beta")
    max_prompt_length: int = Field(128, ge=1, description="Prompt tokens kept, the last ones (dpo, orpo)")
    max_completion_length: Optional[int] = Field(None, description="Answer tokens kept, the first ones (dpo, orpo); "
        "none: up to the block size")
    # columns
    prompt_text_column: Optional[str] = Field(None, description="Prompt column (dpo, orpo)")
    text_column: str = Field("text", description="Column holding the training text or conversation; the chosen "
        "answer for dpo, orpo and reward")
    rejected_text_column: Optional[str] = Field(None, description="Rejected-answer column (dpo, orpo, reward)")
    # hub
    push_to_hub: bool = Field(False, description="Upload the result to the Hugging Face Hub")
    username: Optional[str] = Field(None, description="Hub user or organisation")
    token: Optional[str] = Field(None, repr=False, description="Hub token (else HF_TOKEN or the login cache); never "
        "written to a file or log")
    # unsloth
    unsloth: bool = Field(False, description="Use Unsloth's fast path when the GPU, model and trainer allow it")
    distributed_backend: Optional[Literal["ddp", "deepspeed"]] = Field(None, description="Multi-GPU backend: ddp or deepspeed")
    # added by autotrain-unsloth
    full_finetuning: bool = Field(False, description="Train every weight in 16-bit (Unsloth full_finetuning=True); "
        "excludes --peft")
    use_sharegpt_mapping: bool = Field(False, description="The text column holds ShareGPT conversations (from/value); "
        "map them to role/content before templating")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps; -1: train for --epochs")
    repo_id: Optional[str] = Field(None, description="Hub repo to push to; default {username}/{project_name}")
    hub_private: bool = Field(True, description="Create the Hub repo private (AutoTrain's choice); false: public")
    save_steps: int = Field(0, ge=0, description="Save a checkpoint every N optimizer steps, whatever the validation "
        "split (0: by time only); save_total_limit of them are kept")
    save_minutes: float = Field(30, ge=0, description="Save a checkpoint every N minutes of training (0: by steps only)")
    resume_from_checkpoint: Optional[str] = Field("auto", description="auto: resume from the newest complete "
        "checkpoint in the project folder made for these settings; a checkpoint folder; or none: start over")
    overwrite_project: bool = Field(False, description="Replace a finished run in the project folder (otherwise the "
        "run stops rather than overwrite it)")
    response_only_loss: bool = Field(False, description="sft on conversations: compute the loss on the assistant's "
        "turns only (the prompt tokens get label -100); aitraining's name; off in AutoTrain's defaults, on for sft "
        "chat data in aitraining's")
    _notes: tuple = PrivateAttr(default=())  # what was given but is not used (shown in the plan)

    def __init__(self, **data: Any) -> None:
        # As AutoTrain: an unknown key is dropped with a warning (files and YAML are checked strictly: unknown_keys).
        notes = [*aitraining_settings.triage(data)[2], *unknown_keys(data, type(self).model_fields)]
        super().__init__(**data)
        self._notes = tuple(notes)
        for note in notes:
            logging.getLogger("autotrain_unsloth").warning(note)

    # -- input normalisation -------------------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _foreign_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data, errors, _ = aitraining_settings.triage(data)
        errors += [f"unknown setting {key!r}: AutoTrain renamed it to {RENAMED_KEYS[key]!r}" for key in data
                   if key in RENAMED_KEYS]
        if errors:
            raise ValueError("; ".join(errors))
        return {key: value for key, value in data.items() if key in cls.model_fields}

    @field_validator("valid_split", "padding", "mixed_precision", "chat_template", "quantization",
                     "target_modules", "model_ref", "max_completion_length", "prompt_text_column",
                     "rejected_text_column", "username", "token", "distributed_backend", "resume_from_checkpoint",
                     "repo_id", "export_gguf", mode="before")
    @classmethod
    def _none_spellings(cls, value: Any, info: ValidationInfo) -> Any:
        # AutoTrain's CLI and UIs send "None"/"none" for an unset optional; mixed_precision also knows "no".
        unset = ("none", "null", "", *(("no",) if info.field_name == "mixed_precision" else ()))
        if isinstance(value, str) and value.strip().lower() in unset:
            return None
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _finite_floats(cls, value: Any, info: ValidationInfo) -> Any:
        # Before pydantic's own bounds, so that inf and nan (which pass "greater than 0") get the same sentence.
        name = info.field_name
        if name is None:  # set for every field validator; None only for a model's own
            return value
        annotation = cls.model_fields[name].annotation
        if float not in (annotation, *typing.get_args(annotation)) or isinstance(value, bool) or value is None:
            return value
        try:
            number = float(value)
        except OverflowError:
            number = float("inf")  # an integer too large for a float
        except (TypeError, ValueError):
            return value  # not a number: pydantic says so
        problem = float_problem(name, number)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("chat_template")
    @classmethod
    def _known_chat_template(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else canonical(value)

    @field_validator("project_name")
    @classmethod
    def _project_name_rule(cls, value: str) -> str:
        # A folder (a path, absolute or relative to the working directory, as aitraining accepts); its last part is
        # also the Hub repo name, so it takes what both allow.
        if not PROJECT_NAME.fullmatch(os.path.basename(value.rstrip("/"))):
            raise ValueError(f"project_name {value!r}: its last part must be letters, digits, '-', '_' and '.', not "
                             "starting with '.', at most 96 characters; it names the output folder and the Hub repo")
        return value.rstrip("/")

    @field_validator("block_size")
    @classmethod
    def _single_block_size(cls, value: Union[int, List[int]]) -> Union[int, List[int]]:
        sizes = value if isinstance(value, list) else [value]
        if len(sizes) != 1:
            raise ValueError(f"block_size {value!r}: give one block size (several are not supported)")
        if sizes[0] != -1 and sizes[0] < 1:
            raise ValueError(f"block_size {sizes[0]}: must be -1 (automatic) or a positive number of tokens")
        return value

    # -- cross-field rules ---------------------------------------------------------------------------

    @model_validator(mode="after")
    def _contradictions(self) -> "LLMTrainingParams":
        defaults.apply(self)  # aitraining's defaults for what was not given (defaults="aitraining"), then the rules
        problems = contradictions(self)
        if problems:
            raise ValueError("\n  - " + "\n  - ".join(problems))
        return self

    def setting_warnings(self) -> list[str]:
        """Settings that were given but will not be used, each with the reason. Shown in the plan."""
        return [*self._notes, *unused_settings(self)]

    # -- persistence ---------------------------------------------------------------------------------

    def public_dict(self) -> dict:
        """All settings with the token removed: what goes into files, logs and model cards."""
        data = self.model_dump()
        data["token"] = None
        return data

    def save(self, output_dir: str) -> str:
        """Write `training_params.json` (without the token) into output_dir, as AutoTrain does."""
        os.makedirs(output_dir, exist_ok=True)
        path = os.path.join(output_dir, "training_params.json")
        with open(path, "w") as f:
            json.dump(self.public_dict(), f, indent=4)
        return path

    @classmethod
    def load(cls, path: str) -> "LLMTrainingParams":
        """Read a training_params.json (ours, stock AutoTrain's or aitraining's). Values equal to their default
        (the file's tool's) are treated as not given, so that `setting_warnings` speaks only of what the user set."""
        with open(path) as f:
            data = parse_json(f.read(), path, "write the settings as one JSON object, or create them with aitraining",
                              SettingsFileError)
        if not isinstance(data, dict):
            raise SettingsFileError(f"{path}: expected a JSON object of settings")
        return cls.from_settings(data, path, SettingsFileError)

    @classmethod
    def from_settings(cls, data: dict, source: str = "settings", error: type[Exception] = ValueError) -> "LLMTrainingParams":
        """Settings as a tool saved them (all of them, most at defaults): an unknown key is an error here."""
        unknown = unknown_keys(data, cls.model_fields)
        if unknown:
            raise error(f"{source}: {'; '.join(unknown).replace(' not used', '')}")
        if "defaults" not in data and any(aitraining_settings.is_aitraining_only(key) for key in data):
            data = {**data, "defaults": "aitraining"}  # written by aitraining
        return cls(**{key: value for key, value in data.items()
                      if key == "defaults" or key not in cls.model_fields or not defaults.is_default(cls, key, value, data)})

    @property
    def project_basename(self) -> str:
        return os.path.basename(self.project_name)  # the Hub repo's name and the GGUF file's

    @property
    def block_size_int(self) -> int:
        return self.block_size[0] if isinstance(self.block_size, list) else self.block_size

    def __str__(self) -> str:
        return f"LLMTrainingParams({', '.join(f'{k}={v!r}' for k, v in self.public_dict().items())})"
