"""Plain transformers + PEFT (+ bitsandbytes): the path for CPUs, unsupported models and trainers, and
for anyone who did not ask for Unsloth."""

from __future__ import annotations

from autotrain_unsloth.attention import varlen
from autotrain_unsloth.backends import (
    added_tokens_as_planned,
    fit_to_tokenizer,
    nf4_config,
    ready_for_training,
    token_rows_to_train,
)
from autotrain_unsloth.distributed import local_rank
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import TORCH_DTYPE_NAMES, Plan
from autotrain_unsloth.remote_code import trust_remote_code


def load_model(params: LLMTrainingParams, plan: Plan, tokenizer, max_seq_length: int):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, BitsAndBytesConfig

    dtype = getattr(torch, TORCH_DTYPE_NAMES[plan.weights_dtype])
    kwargs = {"dtype": dtype, "trust_remote_code": trust_remote_code()}
    if plan.method == "qlora-4bit":
        kwargs["quantization_config"] = nf4_config(
            torch.float32 if plan.autocast == "no" else getattr(torch, TORCH_DTYPE_NAMES[plan.autocast]))
    elif plan.method == "lora-8bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    if plan.device == "cuda":
        kwargs["device_map"] = {"": local_rank()}
    if plan.packed_attention == "torch-varlen":
        kwargs["attn_implementation"] = varlen.register()
    elif plan.packed_attention == "flash_attention_2" or (plan.device == "cuda" and params.use_flash_attention_2):
        kwargs["attn_implementation"] = "flash_attention_2"
    if plan.trainer == "reward":  # a reward model: one score per sequence, read at the last non-pad token
        model = AutoModelForSequenceClassification.from_pretrained(params.model, num_labels=1, **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(params.model, **kwargs)
    ready_for_training(model)
    new_token_ids = added_tokens_as_planned(plan, fit_to_tokenizer(model, tokenizer))
    if not plan.peft:
        return model

    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if plan.quantization:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=plan.gradient_checkpointing != "off")
    elif plan.gradient_checkpointing != "off":
        model.enable_input_require_grads()
    targets = plan.lora_target_modules
    assert targets is not None  # LoRA: the plan names the modules (rules.lora_targets)
    torch.manual_seed(params.seed)  # LoRA's A matrices are drawn now, before the Trainer seeds anything
    config = LoraConfig(
        r=params.lora_r, lora_alpha=params.lora_alpha, lora_dropout=params.lora_dropout, bias="none",
        task_type="SEQ_CLS" if plan.trainer == "reward" else "CAUSAL_LM",  # SEQ_CLS also trains the score head
        target_modules="all-linear" if targets == ("all-linear",) else list(targets),
        # Tokens added for a chat template start untrained: train just their rows, not the whole matrices.
        trainable_token_indices=token_rows_to_train(model, new_token_ids),
    )
    return get_peft_model(model, config)


def install_packed_attention(plan: Plan, model) -> str | None:
    """What attention packed rows run with (chosen at load time through attn_implementation)."""
    return varlen.RAN.get(plan.packed_attention) if plan.packed_attention else None
