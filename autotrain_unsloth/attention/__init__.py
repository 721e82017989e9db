"""Attention for packed rows: several documents in one row, each attending only to itself.

`varlen.py` is torch's variable-length flash kernel (`torch.nn.attention.varlen.varlen_attn`) behind
transformers' attention interface, for the transformers path and for Unsloth's full fine-tuning and 8-bit LoRA
(Unsloth loads those as transformers' modelling code); `unsloth_dispatch.py` puts the same kernel under the
packed-attention dispatch of Unsloth's LoRA and QLoRA on torch releases where Unsloth does not take it itself. The plan
chooses (plan rule `packed_attention`); the job installs what the plan chose and records what ran.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Optional


@lru_cache(maxsize=1)
def torch_varlen_support() -> Optional[str]:
    """How the installed torch offers `varlen_attn`: "gqa" (takes enable_gqa: torch 2.12 and later), "no-gqa"
    (causal through window_size, grouped K/V taken as they are: torch 2.11), or None (absent or too old)."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    parameters = inspect.signature(varlen_attn).parameters
    if "window_size" not in parameters:
        return None
    return "gqa" if "enable_gqa" in parameters else "no-gqa"
