"""The optimizer-state offload on a CUDA GPU with bitsandbytes' 8-bit AdamW: the chunked, overlapped updates give
bitsandbytes' own weights bit for bit, the state sits in pinned host memory between steps (but for the resident
part), a saved state loads back into pinned buffers and the updates go on the same, and a full fine-tune through
the CLI with the offload asked for trains and is checked at its first step."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from tests.gpu.test_unsloth_gpu import common_flags, losses, run_cli

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes"),
]


def weights(seed=0):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    shapes = [(1024, 2048), (2048, 1024), (1024, 1024), (512, 1024), (64,), (1024, 2048), (4096, 512)]
    return [torch.nn.Parameter(torch.randn(s, device="cuda", dtype=torch.bfloat16, generator=generator))
            for s in shapes]


@pytest.mark.parametrize("resident_share", [0.0, 0.4])
def test_offloaded_bitsandbytes_adamw8bit_matches_its_own_step(resident_share):
    import bitsandbytes as bnb

    from autotrain_unsloth.trainers import state_offload

    plain, offloaded = weights(), weights()
    reference = bnb.optim.AdamW8bit(plain, lr=1e-3)
    optimizer = bnb.optim.AdamW8bit(offloaded, lr=1e-3)
    total = sum(p.numel() for p in offloaded) * 2
    offload = state_offload.install(optimizer, int(total * resident_share), 2, chunk_bytes=2**20,
                                    smallest_moved_bytes=4096)
    generator = torch.Generator(device="cuda").manual_seed(1)
    for _ in range(4):
        for a, b in zip(plain, offloaded):
            a.grad = torch.randn(a.shape, device="cuda", dtype=a.dtype, generator=generator)
            b.grad = a.grad.clone()
        reference.step()
        optimizer.step()
    torch.cuda.synchronize()
    for a, b in zip(plain, offloaded):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    moved = {weight for weight, _ in offload.host}
    assert moved and moved.isdisjoint(offload.resident) and bool(offload.resident) == (resident_share > 0)
    for (weight, key), buffer in offload.host.items():
        assert optimizer.state[weight][key] is buffer and buffer.is_pinned()
    for weight in offload.resident:
        assert optimizer.state[weight]["state1"].is_cuda


def test_a_saved_state_loads_into_pinned_buffers_and_the_updates_go_on_the_same():
    import bitsandbytes as bnb

    from autotrain_unsloth.trainers import state_offload

    plain, offloaded = weights(), weights()
    reference = bnb.optim.AdamW8bit(plain, lr=1e-3)
    first = bnb.optim.AdamW8bit(offloaded, lr=1e-3)
    state_offload.install(first, 0, 2, chunk_bytes=2**20, smallest_moved_bytes=4096)
    generator = torch.Generator(device="cuda").manual_seed(1)

    def step(optimizer):
        for a, b in zip(plain, offloaded):
            a.grad = torch.randn(a.shape, device="cuda", dtype=a.dtype, generator=generator)
            b.grad = a.grad.clone()
        reference.step()
        optimizer.step()

    for _ in range(2):
        step(first)
    saved = first.state_dict()
    second = bnb.optim.AdamW8bit(offloaded, lr=1e-3)
    offload = state_offload.install(second, 0, 2, chunk_bytes=2**20, smallest_moved_bytes=4096)
    second.load_state_dict(saved)
    assert all(buffer.is_pinned() for buffer in offload.host.values()) and offload.host
    before = torch.cuda.memory_allocated()
    for _ in range(2):
        step(second)
    torch.cuda.synchronize()
    for a, b in zip(plain, offloaded):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.cuda.memory_allocated() - before < 2**20  # the state went back to the host


def test_full_finetuning_with_the_state_offloaded_trains_and_is_checked(tiny_models, workdir, data_dir):
    project = "offload-full"
    run_cli(workdir, *common_flags(tiny_models["llama"], data_dir, project), "--unsloth", "--full-finetuning",
            "--quantization", "none", "--lr", "2e-3", "--optimizer", "adamw_8bit", "--optimizer-state-offload")
    with open(os.path.join(workdir, project, "plan.json")) as f:
        plan = json.load(f)
    assert plan["optimizer_state_offload"] and plan["optimizer"] == "adamw_8bit"
    assert plan["verified"]["optimizer_state_offloaded"] is True
    curve = losses(os.path.join(workdir, project))
    assert curve[-1] < curve[0]
