"""The `dpo` trainer: TRL's DPOTrainer on prompt / chosen / rejected (data/job/preference.py), beta = dpo_beta,
block_size as the maximum length. The reference is the model with its LoRA adapter turned off (--peft), or a
frozen model: model_ref, else the model itself, loaded as the plan loads the policy's weights (AutoTrain's
rule: model_ref only without --peft)."""

from __future__ import annotations

from autotrain_unsloth.data.job.load import load_split
from autotrain_unsloth.data.job.preference import preference_rows
from autotrain_unsloth.distributed import local_rank, say
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import TORCH_DTYPE_NAMES, Plan


def datasets(params: LLMTrainingParams, plan: Plan, tokenizer):
    def rows(split: str):
        return preference_rows(load_split(params, split), params, tokenizer, split)

    return rows(params.train_split), rows(params.valid_split) if params.valid_split else None


def reference_model(params: LLMTrainingParams, plan: Plan, tokenizer):
    """The frozen reference of full-weight DPO."""
    import torch
    from transformers import AutoModelForCausalLM

    from autotrain_unsloth.backends import fit_to_tokenizer
    from autotrain_unsloth.remote_code import trust_remote_code

    source = params.model_ref or params.model
    kwargs = {"dtype": getattr(torch, TORCH_DTYPE_NAMES[plan.weights_dtype]), "trust_remote_code": trust_remote_code()}
    if plan.device == "cuda":
        kwargs["device_map"] = {"": local_rank()}
    reference = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    fit_to_tokenizer(reference, tokenizer)
    say(f"dpo reference model: {source} ({plan.weights_dtype}, frozen)")
    return reference.eval().requires_grad_(False)


def build(params, plan, model, tokenizer, train, valid, arguments, callbacks):
    from trl import DPOConfig, DPOTrainer

    config = DPOConfig(**arguments, beta=params.dpo_beta, max_length=plan.sequence_length)
    reference = None if plan.peft else reference_model(params, plan, tokenizer)
    return DPOTrainer(model=model, ref_model=reference, args=config, train_dataset=train, eval_dataset=valid,
                      processing_class=tokenizer, callbacks=callbacks)
