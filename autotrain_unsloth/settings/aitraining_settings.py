"""aitraining 0.0.54's own settings (beyond the fields this backend shares with it): what a training_params.json,
YAML file or Python call from aitraining holds, accepted where it changes nothing, refused by name where it would.

A setting at aitraining's default is a no-op and is dropped. A few are harmless when set (the run is the same
without them): dropped with a warning. Any other value is refused in one sentence that names the setting, because
running without it would silently train something else. GRPO, PPO, distillation, sweeps and aitraining's other
backends are out of scope.
"""

from __future__ import annotations

# Every aitraining 0.0.54 field this backend has no field for, with aitraining's default
# (autotrain/trainers/clm/params.py and its base class autotrain/trainers/common.py).
DEFAULTS = {
    "attn_implementation": None, "image_column": None, "sharegpt_mapping_enabled": False,
    "suggested_chat_template": None, "column_mapping": None, "runtime_mapping": None, "map_eos_token": False,
    "apply_chat_template": True, "save_processed_data": "auto",
    "use_distillation": False, "teacher_model": None, "teacher_prompt_template": None, "student_prompt_template": "{input}",
    "distill_temperature": 3.0, "distill_alpha": 0.7, "distill_max_teacher_length": 512,
    "use_sweep": False, "sweep_backend": "optuna", "sweep_n_trials": 10, "sweep_metric": "eval_loss",
    "sweep_direction": "minimize", "sweep_params": None, "post_trial_script": None, "wandb_sweep": False,
    "wandb_sweep_project": None, "wandb_sweep_entity": None, "wandb_sweep_id": None, "wandb_run_id": None,
    "use_enhanced_eval": False, "eval_metrics": "perplexity", "eval_dataset_path": None, "eval_batch_size": 8,
    "eval_save_predictions": False, "eval_benchmark": None, "chat_format": None, "token_weights": None,
    "rl_gamma": 0.99, "rl_gae_lambda": 0.95, "rl_kl_coef": 0.1, "rl_value_loss_coef": 1.0, "rl_clip_range": 0.2,
    "rl_reward_fn": None, "rl_multi_objective": False, "rl_reward_weights": None, "rl_env_type": None,
    "rl_env_config": None, "rl_reward_model_path": None, "rl_num_ppo_epochs": 4, "rl_chunk_size": 128,
    "rl_mini_batch_size": 8, "rl_optimize_device_cache": True, "rl_value_clip_range": 0.2, "rl_max_new_tokens": 128,
    "rl_top_k": 50, "rl_top_p": 1.0, "rl_temperature": 1.0, "rl_env_module": None, "rl_env_class": None,
    "rl_num_generations": 4, "rl_loss_type": "grpo", "rl_mask_truncated_completions": False,
    "use_vllm": False, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.3, "vllm_server_url": None,
    "vllm_tensor_parallel_size": 1, "vllm_server_gpus": 1, "ddp_timeout": 7200,
    "custom_loss": None, "custom_loss_weights": None, "custom_metrics": None, "use_forward_backward": False,
    "forward_backward_loss_fn": None, "forward_backward_custom_fn": None, "gradient_accumulation_steps": 1,
    "manual_optimizer_control": False, "optimizer_step_frequency": 1, "grad_clip_value": 1.0,
    "sample_every_n_steps": 0, "sample_prompts": None, "sample_temperature": 1.0, "sample_top_k": 50, "sample_top_p": 1.0,
    "manual_checkpoint_control": False, "save_state_every_n_steps": 0, "load_state_from": None,
    "inference_prompts": None, "inference_max_tokens": 256, "inference_temperature": 1.0, "inference_top_p": 1.0,
    "inference_top_k": 50, "inference_output": None,
    "wandb_visualizer": None, "wandb_token": None,
}

# Set, these change nothing this backend trains: said in the plan and dropped (never written to a file).
HARMLESS = {
    "sharegpt_mapping_enabled": "aitraining's record that it mapped ShareGPT rows itself",
    "suggested_chat_template": "a suggestion aitraining shows; chat_template is what is used",
    "save_processed_data": "the prepared data is kept in <project>/autotrain-data",
    "wandb_visualizer": "aitraining's terminal view of W&B runs",
    "wandb_token": "W&B reads its own login (WANDB_API_KEY or `wandb login`)",
    "ddp_timeout": "the processes use torch.distributed's default timeout",
    "wandb_run_id": "a new W&B run is started",
}
# aitraining itself ignores these unless their feature is on (it warns so), and the feature is refused here anyway.
RL_PREFIX, DISTILLATION = "rl_", ("teacher_prompt_template", "student_prompt_template", "distill_temperature",
                                  "distill_alpha", "distill_max_teacher_length")
OUT_OF_SCOPE_TRAINERS = {"ppo": "PPO", "grpo": "GRPO", "distillation": "prompt distillation"}
OUT_OF_SCOPE = ("GRPO, PPO, distillation, sweeps, enhanced evaluation, vLLM, custom losses, manual training control "
                "and aitraining's spaces backends are out of scope for this backend")


def is_aitraining_only(name: str) -> bool:
    return name in DEFAULTS or name.startswith(("rl_", "vllm_"))


def triage(data: dict) -> tuple[dict, list[str], list[str]]:
    """(settings without aitraining's own fields, errors, notes). Errors and notes name each setting."""
    kept, errors, notes = {}, [], []
    trainer = data.get("trainer")
    if trainer in OUT_OF_SCOPE_TRAINERS:
        errors.append(f"trainer={trainer!r} ({OUT_OF_SCOPE_TRAINERS[trainer]}) is an aitraining trainer this backend "
                      f"does not run ({OUT_OF_SCOPE}); use default, sft, dpo, orpo or reward")
    for key, value in data.items():
        if not is_aitraining_only(key):
            kept[key] = value
        elif key in DEFAULTS and value == DEFAULTS[key]:
            continue
        elif key in HARMLESS:
            notes.append(f"{key} not used: {HARMLESS[key]}.")
        elif (key.startswith(RL_PREFIX) and trainer not in OUT_OF_SCOPE_TRAINERS) or (
                key in DISTILLATION and not data.get("use_distillation")):
            notes.append(f"{key}={value!r} not used: aitraining reads it only for "
                         f"{'PPO/GRPO' if key.startswith(RL_PREFIX) else 'distillation'}, which is not this trainer.")
        elif trainer not in OUT_OF_SCOPE_TRAINERS:
            default = f" (aitraining's default {DEFAULTS[key]!r})" if key in DEFAULTS else ""
            errors.append(f"{key}={value!r} is an aitraining setting that this backend does not support; remove it or "
                          f"set it back to its default{default} ({OUT_OF_SCOPE} where that is the feature)")
    return kept, errors, notes
