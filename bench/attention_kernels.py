"""Forward + backward time of one decoder layer's attention on a packed 2 x 2,048-token batch, by kernel, on one GPU
(docs/speed.md, "Where the step's time goes"):

  python3 bench/attention_kernels.py --out RESULTS.json

Llama-3.1-8B's heads (32 query, 8 key/value, 128 wide), bf16, causal. Two batches: `dense` (two 2,048-token
documents) and `instruct` (instruction-length documents end to end, as bench/workload.py draws them). Each is run
as torch's SDPA per document length (one call per run of equal lengths, Unsloth's per-segment path) with each SDPA
backend forced, as one SDPA call over the whole row under a block-diagonal mask, and as torch's varlen_attn (flash).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

HEADS, KV_HEADS, HEAD_DIM, TOKENS = 32, 8, 128, 4096


def instruct_lengths(total: int, seed: int = 0) -> list:
    """Log-normal document lengths (median 250, sigma 0.8, clipped 16-2,000: workload.INSTRUCT) filling `total`."""
    draw, lengths = random.Random(seed), []
    while sum(lengths) < total:
        lengths.append(int(min(2000, max(16, math.exp(math.log(250) + 0.8 * draw.gauss(0, 1))))))
    lengths[-1] -= sum(lengths) - total
    return [n for n in lengths if n > 0]


def timed(step, repeats: int = 20) -> float:
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return round(sorted(times)[len(times) // 2] * 1e3, 3)


def tensors():
    q = torch.randn(1, HEADS, TOKENS, HEAD_DIM, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(1, KV_HEADS, TOKENS, HEAD_DIM, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(1, KV_HEADS, TOKENS, HEAD_DIM, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    return q, k, v


def per_segment(q, k, v, lengths):
    """Unsloth's per-segment path: one SDPA call per run of equal lengths, K/V expanded to the query heads."""
    outs, start, i = [], 0, 0
    k, v = (x.repeat_interleave(HEADS // KV_HEADS, dim=1) for x in (k, v))
    while i < len(lengths):
        j = i
        while j < len(lengths) and lengths[j] == lengths[i]:
            j += 1
        end = start + (j - i) * lengths[i]

        def split(x):
            return x[0, :, start:end].unflatten(1, (j - i, lengths[i])).transpose(0, 1)

        outs.append(F.scaled_dot_product_attention(split(q), split(k), split(v), is_causal=True)
                    .transpose(1, 2).flatten(0, 1))
        start, i = end, j
    return torch.cat(outs)


def block_mask(lengths):
    document = torch.repeat_interleave(torch.arange(len(lengths), device="cuda"),
                                       torch.tensor(lengths, device="cuda"))
    position = torch.arange(TOKENS, device="cuda")
    return (document[:, None] == document[None, :]) & (position[:, None] >= position[None, :])


def variants(lengths) -> dict:
    from torch.nn.attention.varlen import varlen_attn

    q, k, v = tensors()
    cu = torch.tensor([0] + lengths, device="cuda").cumsum(0).to(torch.int32)
    mask = block_mask(lengths)
    grad = torch.randn(TOKENS, HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16)

    def backward(out):
        out.reshape(TOKENS, HEADS, HEAD_DIM).backward(grad)

    def segments(backend):
        def step():
            with sdpa_kernel([backend]):
                backward(per_segment(q, k, v, lengths))
        return step

    def masked():
        kk, vv = (x.repeat_interleave(HEADS // KV_HEADS, dim=1) for x in (k, v))
        backward(F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask).transpose(1, 2))

    def varlen():
        qq, kk, vv = (x[0].transpose(0, 1) for x in (q, k, v))
        backward(varlen_attn(qq, kk, vv, cu, cu, max(lengths), max(lengths), window_size=(-1, 0)))

    found = {}
    for name, backend in (("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION), ("sdpa_flash", SDPBackend.FLASH_ATTENTION),
                          ("sdpa_efficient", SDPBackend.EFFICIENT_ATTENTION)):
        try:
            found[f"per_segment_{name}_ms"] = timed(segments(backend))
        except RuntimeError as error:
            found[f"per_segment_{name}_ms"] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
    found["one_call_block_mask_default_ms"] = timed(masked)
    found["varlen_flash_ms"] = timed(varlen)
    probe = torch.empty(2, HEADS, 2048, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    found["sdpa_default_choice"] = SDPBackend(int(torch._fused_sdp_choice(probe, probe, probe, is_causal=True))).name
    causal_flops = sum(4 * HEADS * n * n * HEAD_DIM / 2 for n in lengths) * 3.5  # forward 1, backward 2.5
    found["attention_tflop"] = round(causal_flops / 1e12, 4)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
               "cudnn": torch.backends.cudnn.version(), "heads": [HEADS, KV_HEADS, HEAD_DIM], "tokens": TOKENS}
    for workload, lengths in (("dense", [2048, 2048]), ("instruct", instruct_lengths(TOKENS))):
        results[workload] = {"documents": len(lengths), **variants(lengths)}
        print(workload, json.dumps(results[workload]), flush=True)
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
