"""torch's variable-length flash kernel for packed rows, behind transformers' attention interface.

TRL packs an sft batch padding-free: the documents of a batch are laid end to end in one row, and
`position_ids` restart at every document. transformers' `sdpa` then builds a (T, T) block-diagonal mask from
`position_ids` and computes the whole square; `varlen_attn` computes each document's causal triangle alone,
with grouped K/V heads as they are, in one launch. Whatever the kernel cannot take (several rows, a padding
mask, fp32, dropout, a sliding window, a CPU tensor) goes to transformers' own `sdpa`, with the mask that
`sdpa` would have built, so results never depend on which of the two ran.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any, Optional

from autotrain_unsloth.attention import torch_varlen_support

ATTENTION_NAME = "torch_varlen"  # the name registered with transformers (attn_implementation)
# What each planned packed attention runs, as plan.json's verified.packed_attention records it.
RAN = {
    "torch-varlen": "torch varlen_attn (transformers attention 'torch_varlen'; sdpa for what it cannot take)",
    "sdpa-mask": "sdpa with transformers' block-diagonal mask from position_ids",
    "flash_attention_2": "flash attention 2 (variable-length kernel)",
}
# Calls of packed_attention_forward since the process started, by what ran: the first-step check reads them, so
# a plan that says varlen_attn cannot quietly run sdpa instead.
CALLS = {"varlen_attn": 0, "sdpa": 0}


def varlen_causal(query, key, value, cu_seqlens, max_seqlen: int, scale: Optional[float] = None):
    """Causal attention within each segment: query (T, H, D), key / value (T, H_kv, D) -> (T, H, D)."""
    from torch.nn.attention.varlen import varlen_attn

    kwargs: dict[str, Any] = {"window_size": (-1, 0)}  # (-1, 0): every earlier key, no later one
    if not default_scale(scale, query.shape[-1]):
        kwargs["scale"] = scale  # kernel_takes() sent calls here only where this torch takes it
    if key.shape[1] != query.shape[1] and torch_varlen_support() == "gqa":
        kwargs["enable_gqa"] = True  # torch 2.11 takes grouped heads without the flag, and has no such argument
    return varlen_attn(query, key, value, cu_seqlens, cu_seqlens, max_seqlen, max_seqlen, **kwargs)


def default_scale(scale: Optional[float], head_dim: int) -> bool:
    return scale is None or abs(scale - head_dim ** -0.5) < 1e-9


@lru_cache(maxsize=1)
def _takes_scale() -> bool:
    from torch.nn.attention.varlen import varlen_attn

    return "scale" in inspect.signature(varlen_attn).parameters


class _Boundaries:
    """Segment starts of the current batch's packed row, computed once for all layers of a forward pass (the
    layers receive the same position_ids tensor) and again for the backward's recomputation only if it differs."""

    position_ids = None
    cu_seqlens = None
    max_seqlen = 0

    @classmethod
    def of(cls, position_ids):
        import torch

        if position_ids is not cls.position_ids:
            flat = position_ids[0]
            # A segment starts where the position does not follow the one before: transformers' rule
            # (masking_utils.find_packed_sequence_indices), so both kernels see the same documents.
            starts = torch.ones_like(flat, dtype=torch.bool)
            starts[1:] = flat[1:] != flat[:-1] + 1
            edges = torch.nonzero(starts).flatten()
            total = torch.tensor([flat.numel()], device=flat.device, dtype=edges.dtype)
            cls.cu_seqlens = torch.cat([edges, total]).to(torch.int32)
            cls.max_seqlen = int((cls.cu_seqlens[1:] - cls.cu_seqlens[:-1]).max())
            cls.position_ids = position_ids
        return cls.cu_seqlens, cls.max_seqlen


def kernel_takes(module, query, key, dropout: float, position_ids, kwargs: dict) -> bool:
    """Whether varlen_attn computes exactly what sdpa with transformers' mask would: one row (a padding-free
    batch has no padding to mask), no KV cache (queries and keys cover the same tokens), 16-bit CUDA tensors."""
    import torch

    return (position_ids is not None and query.shape[0] == 1 and query.shape[2] == key.shape[2] and query.is_cuda
            and query.dtype in (torch.float16, torch.bfloat16) and not dropout
            and getattr(module, "is_causal", True) and getattr(module, "sliding_window", None) is None
            and kwargs.get("softcap") is None and query.shape[-1] % 8 == 0 and query.shape[-1] <= 256
            and (default_scale(kwargs.get("scaling"), query.shape[-1]) or _takes_scale()))


def packed_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0,
                             scaling: Optional[float] = None, **kwargs):
    """transformers' attention-function contract: query (B, H, T, D), key / value (B, H_kv, T, D) ->
    ((B, T, H, D), None)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    position_ids = kwargs.get("position_ids")
    takes = kernel_takes(module, query, key, dropout, position_ids, {**kwargs, "scaling": scaling})
    CALLS["varlen_attn" if takes else "sdpa"] += 1
    if not takes:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    cu_seqlens, max_seqlen = _Boundaries.of(position_ids)
    q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))  # (T, H, D)
    out = varlen_causal(q, k, v, cu_seqlens, max_seqlen, scale=scaling)
    return out.unsqueeze(0), None


def register() -> str:
    """Make `attn_implementation="torch_varlen"` known to transformers; its masks are sdpa's, for the fallback.

    The function runs eagerly even inside a compiled region: Unsloth compiles each decoder layer of the models it
    loads through FastModel (full fine-tuning), and traced, the segment boundaries (read on the host) would break
    the graph or be guarded on at every new batch. Left out of the graph, the layer compiles around it."""
    import torch
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, torch.compiler.disable(packed_attention_forward))
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    return ATTENTION_NAME
