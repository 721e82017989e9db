"""The settings that choose how fast and in how much memory a job runs, most of them automatic by default (the plan
decides them: plan/fit.py, plan/speed.py). LLMTrainingParams inherits them, so they are fields, flags and YAML keys
like every other setting."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field


class SpeedFields(BaseModel):
    auto_gradient_checkpointing: bool = Field(True, description="Turn gradient checkpointing off when the memory "
        "estimate says training fits without it (faster); false: AutoTrain's rule, on unless "
        "disable_gradient_checkpointing")
    optimizer_state_offload: Optional[bool] = Field(None, description="Full fine-tuning on a GPU: keep the optimizer "
        "state in pinned host memory between steps (the part the GPU's headroom holds stays there), stepped on the GPU "
        "a chunk at a time; unset: where the step does not fit the GPU otherwise (UNSLOTH_OFFLOAD_OPTIMIZER_STATE sets "
        "it too)")
    auto_micro_batch: bool = Field(True, description="When nothing else makes the step fit in memory, train smaller "
        "micro-batches with more gradient accumulation (the same rows per optimizer step); false: batch_size as given")
    packing: Optional[bool] = Field(None, description="sft: lay several examples end to end in each row without "
        "padding, kept apart by the attention; unset: on wherever the model keeps them apart")
    auto_packed_attention: bool = Field(True, description="Packed rows on a GPU: run torch's variable-length "
        "attention kernel (Unsloth's LoRA and QLoRA: under Unsloth's dispatch where it does not take it itself; its full "
        "fine-tuning and 8-bit LoRA: as attn_implementation); false: the library's own choice")
    use_liger_kernel: Optional[bool] = Field(None, description="Liger's Triton kernels (RMSNorm, RoPE, SwiGLU, "
        "fused linear cross-entropy) on the transformers path, for the default and sft trainers (TRL's name); "
        "unset: on where liger-kernel is installed, a CUDA GPU trains and Liger patches the architecture")
    auto_optimizer: bool = Field(True, description="Full fine-tuning on a GPU: run optimizer adamw_8bit as torchao's "
        "compiled AdamW8bit (the same block-wise 8-bit AdamW, faster than bitsandbytes' kernel); false: bitsandbytes")
    fp8: bool = Field(False, description="Full fine-tuning on a GPU with FP8 tensor cores (compute capability 8.9 "
        "and later: H100, H200, L4, RTX 40): run the decoder layers' linear layers in FP8 (torchao's float8 training, "
        "tensorwise scaling; the weights, the output layer and the optimizer stay as planned); LLaMA-Factory's name. "
        "Off by default: docs/speed.md compares its loss and speed with bf16")
