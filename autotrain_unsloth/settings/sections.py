"""The sections of `--help` and docs/params.md: every setting of LLMTrainingParams in exactly one
(tests/test_params.py checks)."""

from __future__ import annotations

from autotrain_unsloth.settings.aitraining_fields import SECTIONS as AITRAINING_SECTIONS

SECTIONS = {
    "model": ("model", "project_name", "trainer", "full_finetuning", "unsloth", "use_flash_attention_2",
              "use_liger_kernel"),
    "data": ("data_path", "train_split", "valid_split", "text_column", "prompt_text_column", "rejected_text_column",
             "chat_template", "use_sharegpt_mapping", "response_only_loss", "add_eos_token", "block_size",
             "model_max_length", "padding", "packing"),
    "training": ("lr", "epochs", "max_steps", "batch_size", "gradient_accumulation", "warmup_ratio", "optimizer",
                 "scheduler", "weight_decay", "max_grad_norm", "seed", "mixed_precision", "fp8", "disable_gradient_checkpointing",
                 "auto_find_batch_size", "logging_steps", "eval_strategy", "save_total_limit", "log",
                 "distributed_backend"),
    "checkpoints": ("save_steps", "save_minutes", "resume_from_checkpoint", "overwrite_project"),
    "LoRA": ("peft", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "merge_adapter", "merged_copy"),
    "export": ("export_gguf",),
    "quantization": ("quantization",),
    "preference trainer (dpo, orpo, reward)": ("model_ref", "dpo_beta", "max_prompt_length", "max_completion_length"),
    "hub": ("push_to_hub", "username", "token", "repo_id", "hub_private"),
    "automatic": ("auto_gradient_checkpointing", "auto_optimizer", "auto_packed_attention", "optimizer_state_offload",
                  "auto_micro_batch"),
}
for _section, _names in AITRAINING_SECTIONS.items():
    SECTIONS[_section] = SECTIONS.get(_section, ()) + _names
