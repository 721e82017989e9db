"""The speed rules: torchao's 8-bit AdamW for full fine-tuning, packing, the attention kernel for packed rows, and
Liger's kernels on the transformers path, automatic (gradient checkpointing is sized with the rest of the memory in
fit.py); FP8 matmuls, asked for. Each is a function returning a Choice, the automatic ones with a setting that turns
them off (docs/plan.md; the figures behind them are in docs/benchmarks.md)."""

from __future__ import annotations

from typing import Optional

from autotrain_unsloth.memory import ModelShape
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan.architectures import LIGER_ARCHITECTURES, PACKING_ARCHITECTURES, architecture
from autotrain_unsloth.plan.fit import PAGED_TO_RESIDENT, needs_bitsandbytes
from autotrain_unsloth.plan.types import Backend, Choice, Dtype, Environment, Method, chose

# torchao.optim (AdamW8bit's home) exists from this release on.
TORCHAO_OPTIM_SINCE = (0, 11)


# Optimizers whose step the state offload (trainers/state_offload.py) cannot run in chunks: they would bring
# their whole state back.
NOT_CHUNK_SAFE = ("adamw_torch_8bit", "adamw_torch_4bit", "schedule_free", "galore", "apollo", "lomo", "adalomo",
                  "grokadamw")


def optimizer(params: LLMTrainingParams, env: Environment, method: Method, state_offload: bool = False) -> Choice:
    """The Trainer's optim. Full fine-tuning's adamw_8bit runs as torchao's AdamW8bit: the same block-wise 8-bit
    AdamW (dynamic quantization map, blocks of 256), compiled into fused kernels, where bitsandbytes' optimizer
    step took 27% of an 8B full fine-tuning step on an H100. With the optimizer state offloaded (fit.py) it stays
    bitsandbytes', which the offload steps in chunks, and a paged optimizer becomes its resident twin (the host
    holds the state; CUDA managed memory oversubscribed can hang the GPU). A bitsandbytes optimizer where
    bitsandbytes cannot run (not installed, or no CUDA GPU) becomes adamw_torch, with a warning."""
    choice = _offloaded_optimizer(params) if state_offload else _fast_optimizer(params, env, method)
    if not needs_bitsandbytes(choice.value) or (env.bitsandbytes_installed and env.cuda):
        return choice
    missing = "bitsandbytes is not installed" if not env.bitsandbytes_installed else "there is no CUDA GPU"
    return chose("adamw_torch", f"optimizer adamw_torch: {choice.value} needs bitsandbytes on a CUDA GPU, and {missing}",
                 warning=f"optimizer={params.optimizer!r} needs bitsandbytes on a CUDA GPU and {missing}: training with "
                         "adamw_torch instead (the same AdamW, with fp32 states: 4x the optimizer memory).")


def _offloaded_optimizer(params: LLMTrainingParams) -> Choice:
    asked = params.optimizer
    if asked.startswith(NOT_CHUNK_SAFE):
        return chose(asked, error=f"optimizer={asked!r} steps its whole state at once, so it cannot be stepped from "
                                  "host memory a chunk at a time: use adamw_8bit, or --no-optimizer-state-offload")
    if asked in PAGED_TO_RESIDENT:
        resident = PAGED_TO_RESIDENT[asked]
        return chose(resident, f"optimizer {asked} runs as {resident} with its state offloaded to pinned host memory "
                               "(the same update; paged CUDA managed memory would oversubscribe the GPU, which can hang "
                               "it, where the state does not fit)")
    if asked == "adamw_8bit":
        return chose(asked, "optimizer adamw_8bit (bitsandbytes): its state is offloaded to host memory and stepped a "
                            "chunk at a time, which torchao's AdamW8bit does not allow")
    return chose(asked, f"optimizer {asked}: as asked, its state offloaded to host memory")


def _fast_optimizer(params: LLMTrainingParams, env: Environment, method: Method) -> Choice:
    asked = params.optimizer
    if asked != "adamw_8bit":
        return chose(asked, f"optimizer {asked}: as asked")
    keep = "optimizer adamw_8bit (bitsandbytes): "
    blockers = [why for blocked, why in (
        (not params.auto_optimizer, "auto_optimizer=False"),
        (method != "full", "LoRA trains few weights, so the optimizer step is a small part of each step"),
        (not env.cuda, "no CUDA GPU"),
        (params.distributed_backend == "deepspeed", "DeepSpeed builds its own optimizer"),
        (not _version_at_least(env.torchao_version, TORCHAO_OPTIM_SINCE),
         (f"torchao {env.torchao_version} is older than 0.11" if env.torchao_version else "torchao is not installed")
         + " (torchao's AdamW8bit is faster for full fine-tuning)")) if blocked]
    if blockers:
        return chose(asked, keep + blockers[0])
    return chose("adamw_torch_8bit", (
        "optimizer adamw_8bit runs as torchao's AdamW8bit (optim=adamw_torch_8bit, automatic, faster: the same "
        "block-wise 8-bit AdamW as bitsandbytes in compiled kernels; the update of every weight is a large part of "
        "a full fine-tuning step); --no-auto-optimizer keeps bitsandbytes"))


def _version_at_least(version: Optional[str], minimum: tuple[int, ...]) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return version is not None and Version(version).release[:len(minimum)] >= minimum
    except InvalidVersion:  # "unknown": installed without metadata
        return False


def packing(params: LLMTrainingParams, env: Environment, backend: Backend) -> Choice:
    """sft: several examples laid end to end in a row without padding, kept apart by the attention, instead
    of each example padded to the longest of its batch."""
    if params.trainer != "sft":
        return chose(False)
    if params.packing is False:
        return chose(False, "sft packing off: packing=False; each example is padded to the longest of its batch")
    if backend == "unsloth":
        return chose(True, "sft packing on: examples laid end to end without padding; Unsloth's attention keeps them "
                           "apart (it refuses packing for models without variable-length support)")
    known = architecture(env.model_type)
    if (known and known.packing) or (env.cuda and params.use_flash_attention_2):
        return chose(True, f"sft packing on: examples laid end to end without padding; model_type {env.model_type!r} "
                           "restarts attention where position_ids restart, so they stay apart")
    if params.packing:
        return chose(False, error=f"packing=True: model_type {env.model_type!r} is not known to keep packed examples "
                                  f"apart (known: {', '.join(PACKING_ARCHITECTURES)}); pass --no-packing, or "
                                  "--use-flash-attention-2 on a GPU")
    return chose(False, f"sft packing off: model_type {env.model_type!r} is not known to keep packed examples apart; "
                        "each example is padded instead")


# Methods Unsloth loads through FastModel: transformers' own modelling code, whose attention goes through
# transformers' attention interface, not through Unsloth's dispatch (FastLanguageModel's LoRA and QLoRA path).
FASTMODEL_METHODS = ("full", "lora-8bit")


def packed_attention(params: LLMTrainingParams, env: Environment, backend: Backend, method: Method, packed: bool,
                     weights_dtype: Dtype, autocast: str) -> Choice:
    """The kernel for padding-free rows. Unsloth lays every sft batch out padding-free, packing or not."""
    if not (packed or (backend == "unsloth" and params.trainer == "sft")):
        return chose(None)
    if backend == "unsloth" and method not in FASTMODEL_METHODS:
        return unsloth_dispatch_attention(params, env)
    if backend == "unsloth" and env.flash_attn_installed:
        return chose("unsloth", "packed attention: Unsloth's own choice (flash-attn 2 is installed: its "
                                "variable-length kernel)")
    if env.cuda and params.use_flash_attention_2:
        return chose("flash_attention_2", "packed attention: flash attention 2 (use_flash_attention_2=True)")
    blockers = [why for blocked, why in (
        (not params.auto_packed_attention, "auto_packed_attention=False"), (not env.cuda, "no CUDA GPU"),
        (env.torch_varlen is None, "this torch has no varlen_attn"),
        (weights_dtype == "fp32" and autocast == "no", "fp32 compute (the varlen kernel takes 16-bit)")) if blocked]
    if blockers:
        return chose("sdpa-mask", "packed attention: sdpa with transformers' block-diagonal mask from position_ids ("
                                  + "; ".join(blockers) + ")")
    where = ("; Unsloth loads full fine-tuning and 8-bit LoRA as transformers' modelling code, so it is given as "
             "attn_implementation" if backend == "unsloth" else "")
    return chose("torch-varlen", "packed attention: torch's varlen_attn (automatic, faster: each example's causal "
                                 "triangle alone, instead of sdpa over the row's whole square under a block-diagonal "
                                 "mask: 2.3-3.1x a layer on 8B's heads, 1.15-1.21x an 8B full fine-tuning step, "
                                 f"docs/speed.md{where}); --no-auto-packed-attention keeps sdpa")


def unsloth_dispatch_attention(params: LLMTrainingParams, env: Environment) -> Choice:
    """FastLanguageModel's LoRA and QLoRA: attention through Unsloth's own dispatch."""
    own = "packed attention: Unsloth's own dispatch"
    if env.flash_attn_installed:
        return chose("unsloth", own + " (flash-attn 2 is installed: its variable-length kernel)")
    if env.torch_varlen == "gqa":
        return chose("unsloth", own + " (torch's varlen_attn takes enable_gqa here, and Unsloth uses it)")
    if not params.auto_packed_attention:
        return chose("unsloth", own + " (auto_packed_attention=False)")
    if env.torch_varlen == "no-gqa":
        return chose("torch-varlen-in-unsloth", (
            "packed attention: torch's varlen_attn under Unsloth's dispatch (automatic, faster: Unsloth takes it "
            "only from torch 2.12, and otherwise runs one SDPA call per document length, each planned anew by "
            "cuDNN; docs/benchmarks.md); checked against Unsloth's per-document SDPA when the model loads, with "
            "cuDNN's SDPA turned off instead if they disagree; --no-auto-packed-attention keeps Unsloth's"))
    return chose("sdpa-no-cudnn", "packed attention: Unsloth's per-document SDPA with cuDNN's SDPA off (automatic, "
                                  "faster: cuDNN plans every new document length anew; this torch has no "
                                  "varlen_attn); --no-auto-packed-attention keeps cuDNN")


LIGER_TRAINERS = ("default", "sft")  # causal-LM losses, which Liger's fused linear cross-entropy computes


def liger_kernels(params: LLMTrainingParams, env: Environment, backend: Backend) -> Choice:
    """Liger's Triton kernels (RMSNorm, RoPE, SwiGLU, the loss fused with the output layer, which never
    materialises the logits), patched in by the Trainer: only on the transformers path, where Unsloth's own
    kernels do not run."""
    asked, known = params.use_liger_kernel, architecture(env.model_type)
    if asked is False:
        return chose(False, "Liger kernels off: use_liger_kernel=False" if backend == "transformers" else None)
    blockers = [why for blocked, why in (
        (backend == "unsloth", "Unsloth's path runs its own kernels"),
        (params.trainer not in LIGER_TRAINERS, f"trainer {params.trainer!r} computes its own loss"),
        (not env.cuda, "no CUDA GPU (Liger's kernels are Triton)"),
        (not env.liger_installed, "liger-kernel is not installed (pip install 'autotrain-unsloth[liger]')"),
        (not (known and known.liger), f"model_type {env.model_type!r} is not one Liger is used for here "
                                      f"({', '.join(LIGER_ARCHITECTURES)})")) if blocked]
    if blockers and asked:
        return chose(False, error="use_liger_kernel=True: " + "; ".join(blockers))
    if blockers:
        quiet = backend == "unsloth" or not env.cuda or not env.liger_installed
        return chose(False, None if quiet else "Liger kernels off: " + "; ".join(blockers))
    how = "use_liger_kernel=True" if asked else "automatic: liger-kernel is installed; --no-use-liger-kernel turns it off"
    return chose(True, f"Liger kernels on (RMSNorm, RoPE, SwiGLU, the loss fused with the output layer): {how}")


FP8_CAPABILITY = (8, 9)  # Ada and Hopper and later: FP8 tensor cores (torch._scaled_mm)
FP8_ALIGNMENT = 16  # torch._scaled_mm takes matrices whose sides are multiples of 16


def fp8_linears(params: LLMTrainingParams, env: Environment, method: Method, weights_dtype: Dtype,
                processes: int) -> Choice:
    """fp8=True: the decoder layers' linear layers whose matmuls run in FP8 through torchao's float8 training
    (tensorwise scaling: each tensor cast to FP8 with one scale, the weight gradient's in e5m2). The weights stay in
    their dtype (the casts are made per step), the output layer stays in 16-bit (torchtitan's choice: the logits
    are where FP8's error would show most), and so do the embeddings and norms. Opt-in until measured
    (docs/benchmarks.md)."""
    if not params.fp8:
        return chose(None)
    known = architecture(env.model_type)
    shape = env.model_shape
    capability = tuple(int(part) for part in env.gpu_capability.split(".")) if env.gpu_capability else None
    blockers = [why for blocked, why in (
        (method != "full", "it is for full fine-tuning (drop --peft, or drop --fp8)"),
        (not env.cuda, "there is no CUDA GPU"),
        (env.cuda and (capability or (0,)) < FP8_CAPABILITY,
         f"the {env.gpu_name} (compute capability {env.gpu_capability}) has no FP8 tensor cores (8.9 and later: L4, "
         "RTX 40, H100, H200)"),
        (weights_dtype != "bf16", f"it needs bf16 weights, and the plan loads {weights_dtype}"),
        (params.distributed_backend == "deepspeed" and processes > 1,
         "it has not been run with DeepSpeed here (DDP takes it)"),
        (not _version_at_least(env.torchao_version, TORCHAO_OPTIM_SINCE),
         f"torchao {env.torchao_version} is older than 0.11" if env.torchao_version else "torchao is not installed"),
        (known is None, f"model_type {env.model_type!r} is not one whose linear layers are known here"),
        (shape is None, "config.json does not give the model's shape")) if blocked]
    if blockers:
        return chose(None, error="fp8=True: " + "; ".join(blockers))
    assert known is not None and shape is not None
    sides = ModelShape(**shape).projections()
    names = tuple(name for name in known.all_linear
                  if name in sides and all(side % FP8_ALIGNMENT == 0 for side in sides[name]))
    left = [name for name in known.all_linear if name not in names]
    if not names:
        return chose(None, error=f"fp8=True: no linear layer of this model has sides that are multiples of "
                                 f"{FP8_ALIGNMENT}, which FP8 matmuls need")
    return chose(names, f"FP8 matmuls (fp8=True): {', '.join(names)} in each of the {shape['layers']} decoder layers "
                        f"({len(names) * shape['layers']} linear layers), torchao float8 training with tensorwise "
                        "scaling; the output layer, embeddings and norms stay 16-bit"
                 + (f"; {', '.join(left)} stay 16-bit too (sides not multiples of {FP8_ALIGNMENT})" if left else ""))
