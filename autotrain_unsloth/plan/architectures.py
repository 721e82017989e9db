"""What the planner knows of each architecture, in one table: whether Unsloth's fast path takes it, what
LoRA's "all-linear" means for it, whether its attention keeps packed examples apart, and whether Liger patches
it. The memory estimate reads the model's shape from config.json's standard keys (memory.ModelShape) for any of
them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Architecture:
    unsloth: bool  # on Unsloth's verified fast path (tests/gpu)
    all_linear: tuple[str, ...]  # LoRA's "all-linear": every linear layer of the decoder blocks, never lm_head
    # transformers restarts attention where position_ids restart, so a padding-free packed row keeps its
    # examples apart with sdpa and eager attention too (tests/test_packing.py)
    packing: bool
    liger: bool  # in liger-kernel's table of model types (MODEL_TYPE_TO_APPLY_LIGER_FN, 0.5 and later)


ARCHITECTURES = {
    "llama": Architecture(unsloth=True, all_linear=_PROJECTIONS, packing=True, liger=True),
    "mistral": Architecture(unsloth=True, all_linear=_PROJECTIONS, packing=True, liger=True),
    "gemma": Architecture(unsloth=True, all_linear=_PROJECTIONS, packing=True, liger=True),
    "qwen2": Architecture(unsloth=True, all_linear=_PROJECTIONS, packing=True, liger=True),
    "gemma2": Architecture(unsloth=False, all_linear=_PROJECTIONS, packing=False, liger=True),
    "qwen3": Architecture(unsloth=False, all_linear=_PROJECTIONS, packing=False, liger=True),
    "phi3": Architecture(unsloth=False, all_linear=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"), packing=True,
                         liger=True),
    "gpt2": Architecture(unsloth=False, all_linear=("c_attn", "c_proj", "c_fc"), packing=True, liger=False),
}
UNSLOTH_ARCHITECTURES = tuple(name for name, arch in ARCHITECTURES.items() if arch.unsloth)
PACKING_ARCHITECTURES = tuple(name for name, arch in ARCHITECTURES.items() if arch.packing)
LIGER_ARCHITECTURES = tuple(name for name, arch in ARCHITECTURES.items() if arch.liger)


def architecture(model_type: Optional[str]) -> Optional[Architecture]:
    return ARCHITECTURES.get(model_type or "")
