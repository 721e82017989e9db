"""One optimizer step of 8-bit AdamW over decoder-sized weights, with the state on the GPU and offloaded to host
memory three ways, on one GPU (docs/benchmarks.md, "Optimizer state on the host"):

  python3 bench/state_offload_step.py --billions 3.7 --out RESULTS.json

- resident: bitsandbytes' AdamW8bit, state on the GPU (and torchao's AdamW8bit, which the plan runs when it fits);
- unsloth-offload: Unsloth's UNSLOTH_OFFLOAD_OPTIMIZER_STATE (one stream: copy in, update, copy out, per chunk);
- ours: trainers/state_offload.py (copies in both directions overlapped with the updates), all offloaded and with a
  third of the state resident.
The host link's bandwidth for pinned copies, each direction alone and both at once, is measured first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GIB = 2**30


def bandwidth(gib: float = 4.0) -> dict:
    n = int(gib * GIB)
    host_in, host_out = torch.empty(n, dtype=torch.uint8, pin_memory=True), torch.empty(n, dtype=torch.uint8,
                                                                                        pin_memory=True)
    device_in, device_out = torch.empty(n, dtype=torch.uint8, device="cuda"), torch.ones(n, dtype=torch.uint8,
                                                                                         device="cuda")
    streams = torch.cuda.Stream(), torch.cuda.Stream()

    def timed(work):
        work()
        torch.cuda.synchronize()
        start = time.perf_counter()
        work()
        torch.cuda.synchronize()
        return time.perf_counter() - start

    def both():
        with torch.cuda.stream(streams[0]):
            device_in.copy_(host_in, non_blocking=True)
        with torch.cuda.stream(streams[1]):
            host_out.copy_(device_out, non_blocking=True)

    h2d = timed(lambda: device_in.copy_(host_in, non_blocking=True))
    d2h = timed(lambda: host_out.copy_(device_out, non_blocking=True))
    together = timed(both)
    return {"h2d_gb_s": round(n / h2d / 1e9, 1), "d2h_gb_s": round(n / d2h / 1e9, 1),
            "both_directions_gb_s_each": round(n / together / 1e9, 1)}


def weights(billions: float) -> list[torch.nn.Parameter]:
    shapes = [(5120, 17920), (17920, 5120), (5120, 17920), (5120, 5120), (1024, 5120), (1024, 5120), (5120, 5120)]
    per_layer = sum(a * b for a, b in shapes)
    layers = max(1, round(billions * 1e9 / per_layer))
    generator = torch.Generator(device="cuda").manual_seed(0)
    out = []
    for _ in range(layers):
        for shape in shapes:
            p = torch.nn.Parameter(torch.randn(shape, device="cuda", dtype=torch.bfloat16, generator=generator) * 0.02)
            p.grad = torch.randn(shape, device="cuda", dtype=torch.bfloat16, generator=generator) * 1e-3
            out.append(p)
    return out


def time_steps(optimizer, steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.step()
        torch.cuda.synchronize()
        times.append(round(time.perf_counter() - start, 4))
    return times


def run(name: str, params: list, steps: int) -> dict:
    import bitsandbytes as bnb

    from autotrain_unsloth.trainers import state_offload

    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    if name == "torchao-resident":
        from autotrain_unsloth.trainers.torchao_adamw import AdamW8bitCompiledOnce
        optimizer = AdamW8bitCompiledOnce(params, lr=1e-5)
    else:
        optimizer = bnb.optim.AdamW8bit(params, lr=1e-5)
    state = sum(p.numel() for p in params) * 2
    if name == "unsloth-offload":
        from unsloth.optimizers.state_offload import offload_optimizer_state
        offload_optimizer_state(optimizer)
    elif name.startswith("ours"):
        resident = state // 3 if name == "ours-third-resident" else 0
        state_offload.install(optimizer, resident, 2)
    times = time_steps(optimizer, steps)
    record = {"path": name, "step_s": times, "median_step_s": sorted(times[2:])[len(times[2:]) // 2],
              "peak_above_weights_and_gradients_gib": round((torch.cuda.max_memory_allocated() - base) / GIB, 2)}
    del optimizer
    torch.cuda.empty_cache()
    return record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--billions", type=float, default=3.7)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--paths", default="bnb-resident,torchao-resident,unsloth-offload,ours,ours-third-resident")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if "unsloth-offload" in args.paths:
        import unsloth  # noqa: F401  first, as in a job
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "link": bandwidth()}
    params = weights(args.billions)
    result["parameters"] = sum(p.numel() for p in params)
    result["state_gib"] = round(result["parameters"] * 2 / GIB, 2)
    result["records"] = []
    for name in args.paths.split(","):
        result["records"].append(run(name, params, args.steps))
        print(json.dumps(result["records"][-1]), flush=True)
    print(json.dumps(result["link"]))
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
