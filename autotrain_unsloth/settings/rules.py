"""The rules between settings: contradictions (errors, raised when the settings are built) and settings that
were given but will not be used (warnings, shown in the plan). Each message names the setting and the fix."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autotrain_unsloth.params import LLMTrainingParams

from autotrain_unsloth.settings.trainer_names import unknown_name

# The range of each float setting: (lowest, lowest allowed?, highest, highest allowed?, what it is). A float setting
# not listed here must still be a finite number (float_problem).
FLOAT_RANGES = {
    "lr": (0.0, False, math.inf, False, "the learning rate"),
    "warmup_ratio": (0.0, True, 1.0, False, "the share of steps spent warming up"),
    "weight_decay": (0.0, True, math.inf, False, "the weight decay"),
    "max_grad_norm": (0.0, True, math.inf, False, "the gradient clipping norm (0: no clipping)"),
    "lora_dropout": (0.0, True, 1.0, False, "the LoRA dropout probability"),
    "dpo_beta": (0.0, False, math.inf, False, "DPO's beta"),
    "save_minutes": (0.0, True, math.inf, False, "the minutes between checkpoints (0: by steps only)"),
}
LORA_FIELDS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "merge_adapter", "merged_copy")
# Which trainers read each preference setting.
PREFERENCE_USERS = {"model_ref": ("dpo",), "dpo_beta": ("dpo", "orpo"), "max_prompt_length": ("dpo", "orpo"),
                    "max_completion_length": ("dpo", "orpo"), "prompt_text_column": ("dpo", "orpo"),
                    "rejected_text_column": ("dpo", "orpo", "reward")}


def float_problem(name: str, value: float) -> str | None:
    """One sentence naming the float setting and its value when the value is not finite or out of its range."""
    low, low_ok, high, high_ok, what = FLOAT_RANGES.get(name, (-math.inf, False, math.inf, False, "it"))
    below = value < low or (value == low and not low_ok)
    above = value > high or (value == high and not high_ok)
    if math.isfinite(value) and not below and not above:
        return None
    bounds = [f"{'at least' if low_ok else 'greater than'} {low:g}"] if math.isfinite(low) else []
    bounds += [f"{'at most' if high_ok else 'below'} {high:g}"] if math.isfinite(high) else []
    return f"{name}={value!r}: {what} must be a finite number{' ' + ' and '.join(bounds) if bounds else ''}."


def contradictions(p: LLMTrainingParams) -> list[str]:
    problems = []
    if p.peft and p.full_finetuning:
        problems.append("peft=True and full_finetuning=True contradict each other: full fine-tuning trains every "
                        "weight, LoRA (peft) trains an adapter. Drop one (--no-peft or --no-full-finetuning).")
    if p.trainer in ("dpo", "orpo") and not p.rejected_text_column:
        problems.append(f"trainer={p.trainer!r} needs rejected_text_column (the chosen answer is text_column): "
                        "--rejected-text-column, or column_mapping rejected_text_column in YAML.")
    if p.trainer in ("dpo", "orpo") and not p.prompt_text_column and p.chat_template is None:
        problems.append(f"trainer={p.trainer!r} needs prompt_text_column for text rows (--prompt-text-column, or "
                        "column_mapping prompt_text_column in YAML); with --chat-template the chosen and rejected "
                        "conversations give the prompt (every turn but the last).")
    if p.trainer == "reward" and not p.rejected_text_column:
        problems.append("trainer='reward' needs rejected_text_column (the chosen answer is text_column): "
                        "--rejected-text-column, or column_mapping rejected_text_column in YAML.")
    if p.response_only_loss and p.trainer != "sft":
        problems.append(f"response_only_loss=True is for the sft trainer; trainer={p.trainer!r} (dpo, orpo and reward "
                        "score the answers only already). Drop --response-only-loss.")
    if p.response_only_loss and p.chat_template is None and not p.use_sharegpt_mapping:
        problems.append("response_only_loss=True needs conversations rendered with a chat template (it marks the "
                        "assistant's turns): set --chat-template (tokenizer, chatml, ...).")
    if p.push_to_hub and not (p.username or p.repo_id):
        problems.append("push_to_hub=True needs username (or repo_id) to name the repo: --username, or hub: username "
                        "in YAML.")
    if not 0 <= p.seed < 2**32:
        problems.append(f"seed={p.seed}: the random seed must be between 0 and {2**32 - 1} (numpy's range).")
    if p.save_strategy == "steps" and p.save_steps < 1:
        problems.append("save_strategy='steps' needs save_steps of 1 or more (--save-steps 500 is aitraining's default).")
    if p.conversation_extension > 1 and not p.auto_convert_dataset:
        problems.append(f"conversation_extension={p.conversation_extension} joins examples that auto_convert_dataset "
                        "converted: add --auto-convert-dataset.")
    if p.max_steps == 0 or p.max_steps < -1:
        problems.append(f"max_steps={p.max_steps}: give a positive number of steps, or -1 to train for epochs.")
    problems += [problem for setting in ("optimizer", "scheduler") if (problem := unknown_name(setting, getattr(p, setting)))]
    return problems


def unused_settings(p: LLMTrainingParams) -> list[str]:
    notes = []
    full = p.full_finetuning or not p.peft
    if full and p.quantization is not None:
        why = "full_finetuning=True" if p.full_finetuning else "peft=False"
        notes.append(f"quantization={p.quantization!r} is not used: with {why} every weight is trained, unquantized; "
                     "quantization applies to LoRA only (--quantization none silences this).")
    if full:
        unused = [name for name in LORA_FIELDS if name in p.model_fields_set]
        if unused:
            notes.append(f"{', '.join(unused)} not used: no LoRA adapter is trained without --peft.")
    unused = [name for name in PREFERENCE_USERS if name in p.model_fields_set and getattr(p, name) is not None
              and p.trainer not in PREFERENCE_USERS[name]]
    if unused:
        notes.append(f"{', '.join(unused)} not used by the {p.trainer} trainer ("
                     + "; ".join(f"{name}: {', '.join(PREFERENCE_USERS[name])} only" for name in unused) + ").")
    if p.trainer == "dpo" and p.model_ref and p.peft:
        notes.append("model_ref not used: with --peft the reference is the model with its adapter turned off (as in "
                     "AutoTrain).")
    if p.use_sharegpt_mapping and p.chat_template is None:
        notes.append("use_sharegpt_mapping=True without chat_template: the conversations are rendered with the "
                     "tokenizer's own chat template (chat_template='tokenizer'); the job stops if it has none.")
    if p.trainer != "default" and "add_eos_token" in p.model_fields_set:
        notes.append(f"add_eos_token is used by the default trainer only; the {p.trainer} trainer ends each example "
                     "with EOS itself (or with the chat template's end of turn).")
    return notes
