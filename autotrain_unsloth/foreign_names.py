"""Setting names that other tools use and this package does not: AutoTrain's older names (pointed to today's)
and aitraining's own settings (named as unsupported instead of unknown)."""

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

# aitraining's settings beyond stock AutoTrain's that this backend does not implement: named as such, not as
# unknown (aitraining 0.0.54, autotrain/trainers/clm/params.py).
AITRAINING_ONLY = frozenset("""
max_samples attn_implementation save_strategy auto_convert_dataset sharegpt_mapping_enabled
suggested_chat_template column_mapping runtime_mapping map_eos_token conversation_extension apply_chat_template
use_distillation teacher_model teacher_prompt_template student_prompt_template distill_temperature distill_alpha
distill_max_teacher_length use_sweep sweep_backend sweep_n_trials sweep_metric sweep_direction sweep_params wandb_sweep
wandb_sweep_project wandb_sweep_entity wandb_sweep_id wandb_run_id use_enhanced_eval eval_metrics eval_dataset_path
eval_batch_size eval_save_predictions eval_benchmark chat_format token_weights rl_gamma rl_gae_lambda rl_kl_coef
rl_value_loss_coef rl_clip_range rl_reward_fn rl_multi_objective rl_reward_weights rl_env_type rl_env_config
rl_reward_model_path rl_num_ppo_epochs rl_chunk_size rl_mini_batch_size rl_optimize_device_cache rl_value_clip_range
rl_max_new_tokens rl_top_k rl_top_p rl_temperature custom_loss custom_loss_weights custom_metrics use_forward_backward
forward_backward_loss_fn forward_backward_custom_fn gradient_accumulation_steps manual_optimizer_control
optimizer_step_frequency grad_clip_value sample_every_n_steps sample_prompts sample_temperature sample_top_k
sample_top_p manual_checkpoint_control save_state_every_n_steps load_state_from inference_prompts inference_max_tokens
inference_temperature inference_top_p inference_top_k inference_output wandb_visualizer wandb_token
image_column ddp_timeout save_processed_data use_vllm
""".split())


def is_aitraining_only(name: str) -> bool:
    """One of aitraining's own settings (its RL and vLLM settings by prefix: there are many)."""
    return name in AITRAINING_ONLY or name.startswith(("rl_", "vllm_"))
