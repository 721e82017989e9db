"""Unsloth's fast path: FastLanguageModel for full fine-tuning, 16-bit LoRA, QLoRA (int4) and 8-bit LoRA.

Imported only in the training child, and only when the plan chose Unsloth: `import_unsloth` must run before
anything imports transformers, trl or peft, because Unsloth patches them in place for the whole process.

Every argument is passed explicitly: `from_pretrained` defaults to `load_in_4bit=True`, and an Unsloth
release (2026.10.7) loaded 16-bit weights when given only `load_in_4bit=True` for a local bf16 checkpoint.
QLoRA therefore also gets an explicit BitsAndBytesConfig, and the job verifies the loaded model against the
plan (verify.py) before training.
"""

from __future__ import annotations

import contextlib
import os
import sys

from autotrain_unsloth.attention import varlen
from autotrain_unsloth.backends import (
    UnslothLoadError,
    added_tokens_as_planned,
    fit_to_tokenizer,
    nf4_config,
    ready_for_training,
)
from autotrain_unsloth.distributed import local_rank, say
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import TORCH_DTYPE_NAMES, Plan
from autotrain_unsloth.plan.speed import FASTMODEL_METHODS
from autotrain_unsloth.remote_code import trust_remote_code

# What Unsloth raises for a model it does not support. Anything else (out of memory, which is a RuntimeError;
# KeyError, AttributeError, TypeError: bugs) propagates: falling back would hide it.
NOT_SUPPORTED_ERRORS = (NotImplementedError, ValueError, ImportError)


def unsloth_environment(params: LLMTrainingParams) -> dict:
    """The variables Unsloth reads at import: no usage statistics sent to the Hub, compiled modules written into
    the project folder instead of the working directory."""
    return {"UNSLOTH_DISABLE_STATISTICS": "1",
            "UNSLOTH_COMPILE_LOCATION": os.path.abspath(os.path.join(params.project_name, "unsloth_compiled_cache"))}


# Unsloth's own optimizer-state offload, read when its Trainer is built: always off, whatever the environment said.
# The plan took the user's value of it as optimizer_state_offload (plan/fit.py), and trainers/state_offload.py runs
# it, with the copies overlapped; two offloads on one optimizer would move the state twice.
STATE_OFFLOAD_VARIABLE = "UNSLOTH_OFFLOAD_OPTIMIZER_STATE"


def import_unsloth(params: LLMTrainingParams) -> None:
    """Set Unsloth's variables, then import it, first."""
    early = [name for name in ("transformers", "trl", "peft") if name in sys.modules]
    if early:
        raise RuntimeError(f"{', '.join(early)} imported before unsloth; Unsloth's patches would not apply")
    for name, value in unsloth_environment(params).items():
        os.environ.setdefault(name, value)
    os.environ[STATE_OFFLOAD_VARIABLE] = "0"
    import unsloth  # noqa: F401


@contextlib.contextmanager
def offline_for_local_model(model: str):
    """Hub access off while Unsloth loads a local folder (it looks the name up on the Hub otherwise), and only
    then: a Hub dataset or a later upload still reaches the Hub."""
    if not os.path.isdir(model):
        yield
        return
    import huggingface_hub.constants as hub

    saved = os.environ.get("HF_HUB_OFFLINE"), hub.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"], hub.HF_HUB_OFFLINE = "1", True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = saved[1]
        if saved[0] is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved[0]


def not_supported(exc: BaseException) -> bool:
    """Whether Unsloth's failure to load means "this model is not supported" (so the job falls back)."""
    import torch

    return isinstance(exc, NOT_SUPPORTED_ERRORS) and not isinstance(exc, torch.OutOfMemoryError)


def from_pretrained_kwargs(params: LLMTrainingParams, plan: Plan, max_seq_length: int) -> dict:
    """FastLanguageModel.from_pretrained's arguments for the plan (the quantization config is added at load)."""
    return dict(
        model_name=params.model,
        max_seq_length=max_seq_length,
        dtype=TORCH_DTYPE_NAMES[_load_dtype(plan)],
        load_in_4bit=plan.method == "qlora-4bit",
        load_in_8bit=plan.method == "lora-8bit",
        full_finetuning=plan.method == "full",
        use_gradient_checkpointing="unsloth" if plan.gradient_checkpointing == "unsloth" else False,
        use_exact_model_name=True,  # never swap in a different (pre-quantized) repo
        trust_remote_code=trust_remote_code(),
        random_state=params.seed,
        # Under DDP each process loads the whole model onto its own GPU.
        **({"device_map": {"": local_rank()}} if plan.num_processes > 1 else {}),
        # Full fine-tuning and 8-bit LoRA load through FastModel, whose attention is transformers' interface.
        **({"attn_implementation": varlen.ATTENTION_NAME} if plan.packed_attention == "torch-varlen" else {}),
    )


def get_peft_model_kwargs(params: LLMTrainingParams, plan: Plan, max_seq_length: int) -> dict:
    assert plan.lora_target_modules is not None  # LoRA: the plan names the modules (rules.lora_targets)
    return dict(
        r=params.lora_r,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        bias="none",
        target_modules=list(plan.lora_target_modules),
        use_gradient_checkpointing="unsloth" if plan.gradient_checkpointing == "unsloth" else False,
        random_state=params.seed,
        max_seq_length=max_seq_length,
        use_rslora=False,
        loftq_config=None,
        # Tokens a chat template added: Unsloth trains the embedding and output matrices in full (plan: new_tokens).
        modules_to_save=["embed_tokens", "lm_head"] if plan.new_tokens == "embeddings" else None,
    )


def _load_dtype(plan: Plan) -> str:
    # Unsloth is given the 16-bit dtype it computes in: for fp16 full fine-tuning it keeps the fp32 master
    # weights itself, and pure-bf16 full fine-tuning has no autocast.
    return plan.autocast if plan.autocast != "no" else plan.weights_dtype


def load_model(params: LLMTrainingParams, plan: Plan, tokenizer, max_seq_length: int):
    import torch
    from unsloth import FastLanguageModel

    kwargs = from_pretrained_kwargs(params, plan, max_seq_length)
    kwargs["dtype"] = getattr(torch, kwargs["dtype"])
    if plan.packed_attention == "torch-varlen":
        varlen.register()
    if plan.method == "qlora-4bit":
        kwargs["quantization_config"] = nf4_config(kwargs["dtype"])
    try:
        with offline_for_local_model(params.model):
            model, _ = FastLanguageModel.from_pretrained(**kwargs)
    except Exception as exc:
        if not not_supported(exc):
            raise
        raise UnslothLoadError(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc

    ready_for_training(model)
    added_tokens_as_planned(plan, fit_to_tokenizer(model, tokenizer))
    if plan.method == "full":
        return model  # never get_peft_model: full fine-tuning trains the weights themselves
    return FastLanguageModel.get_peft_model(model, **get_peft_model_kwargs(params, plan, max_seq_length))


# The planned attention of FastModel's methods: the attn_implementation it loads as, and what packed rows run.
FASTMODEL_ATTENTION = {
    "torch-varlen": (varlen.ATTENTION_NAME, varlen.RAN["torch-varlen"]),
    # Unsloth wraps transformers' sdpa for packed rows; its own varlen route runs where it takes the row.
    "sdpa-mask": ("sdpa", "transformers' sdpa as Unsloth wraps it: Unsloth's varlen route where it takes the row, "
                          "else sdpa under the block-diagonal mask from position_ids"),
}


def install_packed_attention(plan: Plan, model) -> str | None:
    """Set up the planned attention for packed rows; returns what will run (recorded in plan.json)."""
    import torch

    if plan.packed_attention == "torch-varlen-in-unsloth":
        from autotrain_unsloth.attention import unsloth_dispatch

        return unsloth_dispatch.install(model.config, getattr(torch, TORCH_DTYPE_NAMES[_load_dtype(plan)]))
    if plan.packed_attention == "sdpa-no-cudnn":
        torch.backends.cuda.enable_cudnn_sdp(False)
        return "Unsloth's per-document SDPA, cuDNN's SDPA off"
    # Full fine-tuning and 8-bit LoRA (FastModel): the attention is the model's attn_implementation.
    loaded = getattr(model.config, "_attn_implementation", None)
    if plan.packed_attention in FASTMODEL_ATTENTION:
        wanted, ran = FASTMODEL_ATTENTION[plan.packed_attention]
        if loaded == wanted:
            return ran
        # Like a failed dispatch check above: attention changes the speed, not the result, so the run goes on
        # and says what runs instead.
        message = (f"Unsloth loaded the model with attn_implementation {loaded!r}, not the planned {wanted!r}: "
                   "packed rows run with that")
        say(f"Warning: {message}")
        return message
    if plan.packed_attention == "unsloth" and plan.method in FASTMODEL_METHODS:
        return f"Unsloth's own choice: attn_implementation {loaded!r}"
    return "Unsloth's own dispatch" if plan.packed_attention else None
