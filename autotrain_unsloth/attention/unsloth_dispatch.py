"""torch's varlen kernel under Unsloth's packed-attention dispatch, where Unsloth does not take it itself.

Unsloth 2026.10 sends a packed row to torch's `varlen_attn` only when that function takes `enable_gqa`
(torch 2.12 and later). On torch 2.11 it falls back to one SDPA call per run of equal document lengths, and
SDPA picks cuDNN, which builds a new plan for every new length: on an 8B QLoRA packed run the host spent its
time planning while the GPU idled (2,531 tokens/s, against 8,657 with cuDNN's SDPA off; docs/benchmarks.md).
torch 2.11's `varlen_attn` already computes grouped heads and causal windows; only the flag is missing. So
the job gives Unsloth's dispatch a `varlen_attn` that accepts the flag, then checks, on the model's own head
shapes, that Unsloth's varlen route returns what its per-document SDPA route returns. If it does not, the
job restores Unsloth's state, turns cuDNN's SDPA off instead, and says so.
"""

from __future__ import annotations

from autotrain_unsloth.attention.varlen import CALLS, varlen_causal

# bf16 results of two exact kernels differ by rounding only; a wrong mask or head grouping differs by O(1).
AGREEMENT_TOLERANCE = 2e-2
CHECK_LENGTHS = (7, 33, 88, 128)  # unequal documents, so the dispatch takes the varlen route


def varlen_attn_with_gqa_flag(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, scale=None,
                              window_size=(-1, -1), enable_gqa=False, **kwargs):
    """torch 2.11's varlen_attn with torch 2.12's signature: grouped heads need no flag there, and only
    Unsloth's causal (-1, 0) and full (-1, -1) windows are used. Each call is counted (varlen.CALLS): Unsloth
    calls it only for rows it sends to the kernel, so the first-step check can say how many went there."""
    import torch
    from torch.nn.attention.varlen import varlen_attn

    if not torch.compiler.is_compiling():
        CALLS["varlen_attn"] += 1

    if kwargs:
        raise TypeError(f"varlen_attn on this torch does not take {', '.join(kwargs)}")
    if window_size == (-1, 0) and cu_seq_q is cu_seq_k and max_q == max_k:
        return varlen_causal(query, key, value, cu_seq_q, max_q, scale=scale)
    return varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, scale=scale, window_size=window_size)


def disagreement(n_heads: int, n_kv_heads: int, head_dim: int, dtype) -> float:
    """Largest difference between Unsloth's varlen route and its per-document SDPA route on one packed row."""
    import torch
    from unsloth.utils import attention_dispatch as dispatch

    generator = torch.Generator(device="cuda").manual_seed(0)
    total = sum(CHECK_LENGTHS)

    def draw(heads):
        return torch.randn(1, heads, total, head_dim, device="cuda", dtype=dtype, generator=generator)

    q, k, v = draw(n_heads), draw(n_kv_heads), draw(n_kv_heads)
    lengths = torch.tensor(CHECK_LENGTHS, device="cuda", dtype=torch.int32)
    cu_seqlens = torch.nn.functional.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    seq_info = (lengths, cu_seqlens, max(CHECK_LENGTHS))
    groups = n_heads // n_kv_heads
    with torch.no_grad():
        varlen = dispatch._torch_varlen_packed(q, k, v, seq_info, n_groups=groups, is_causal=True,
                                               sliding_window=None, scale=None)
        reference = dispatch._sdpa_packed_segments(q, k, v, CHECK_LENGTHS, n_groups=groups, is_causal=True,
                                                   sliding_window=None, sdpa_kwargs={})
    return float((varlen.float() - reference.float()).abs().max())


def install(config, dtype) -> str:
    """Give Unsloth's dispatch the varlen kernel and check it on the model's shapes; returns what will run.
    On disagreement (or a kernel that fails), Unsloth's state is restored and cuDNN's SDPA turned off."""
    import torch
    from unsloth.utils import attention_dispatch as dispatch

    n_heads = config.num_attention_heads
    n_kv_heads = getattr(config, "num_key_value_heads", None) or n_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    previous = dispatch._TORCH_VARLEN_ATTN
    dispatch._TORCH_VARLEN_ATTN = varlen_attn_with_gqa_flag
    try:
        difference = disagreement(n_heads, n_kv_heads, head_dim, dtype)
        problem = None if difference <= AGREEMENT_TOLERANCE else f"differs by {difference:.3g} > {AGREEMENT_TOLERANCE}"
    except (RuntimeError, TypeError) as exc:  # a kernel that rejects these shapes
        problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if problem is None:
        return (f"torch varlen_attn under Unsloth's dispatch (agrees with Unsloth's per-document SDPA within "
                f"{difference:.2g} on {n_heads}/{n_kv_heads} heads of {head_dim})")
    dispatch._TORCH_VARLEN_ATTN = previous
    torch.backends.cuda.enable_cudnn_sdp(False)
    message = (f"torch varlen_attn under Unsloth's dispatch failed its check ({problem}); running Unsloth's "
               "per-document SDPA with cuDNN's SDPA off instead")
    print(f"Warning: {message}", flush=True)
    return message
