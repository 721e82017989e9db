"""The rules between settings: contradictions (errors, raised when the settings are built) and settings that
were given but will not be used (warnings, shown in the plan). Each message names the setting and the fix."""

from __future__ import annotations

LORA_FIELDS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "merge_adapter", "merged_copy")
# Which trainers read each preference setting.
PREFERENCE_USERS = {"model_ref": ("dpo",), "dpo_beta": ("dpo", "orpo"), "max_prompt_length": ("dpo", "orpo"),
                    "max_completion_length": ("dpo", "orpo"), "prompt_text_column": ("dpo", "orpo"),
                    "rejected_text_column": ("dpo", "orpo", "reward")}


def contradictions(p) -> list[str]:
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
    if p.save_strategy == "steps" and p.save_steps < 1:
        problems.append("save_strategy='steps' needs save_steps of 1 or more (--save-steps 500 is aitraining's default).")
    if p.conversation_extension > 1 and not p.auto_convert_dataset:
        problems.append(f"conversation_extension={p.conversation_extension} joins examples that auto_convert_dataset "
                        "converted: add --auto-convert-dataset.")
    if p.max_steps == 0 or p.max_steps < -1:
        problems.append(f"max_steps={p.max_steps}: give a positive number of steps, or -1 to train for epochs.")
    return problems


def unused_settings(p) -> list[str]:
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
