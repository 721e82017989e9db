"""The optimizer-state offload (trainers/state_offload.py) on the CPU: chunked updates with the other gradients
hidden give the optimizer's own result, resident weights keep their state in place, the rest lives in the offload's
buffers, and a saved state loads back into them (tests/gpu/test_state_offload_gpu.py runs it with the copy streams)."""

import copy

import pytest
import torch

from autotrain_unsloth.trainers import state_offload

STEPS = 4


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 128),
                               torch.nn.GELU(), torch.nn.Linear(128, 8))


def train(net, optimizer, steps=STEPS, generator=None):
    generator = generator or torch.Generator().manual_seed(1)
    for _ in range(steps):
        inputs = torch.randn(16, 64, generator=generator)
        loss = net(inputs).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def state_bytes(net):  # AdamW: two fp32 moments a weight
    return 8 * net[0].weight.numel()


@pytest.mark.parametrize("resident_layers, chunk_bytes", [(0, 1), (0, 10**9), (1, 40_000), (5, 40_000)])
def test_chunked_offloaded_updates_match_the_optimizers_own(resident_layers, chunk_bytes):
    plain, offloaded = model(), model()
    reference = torch.optim.AdamW(plain.parameters(), lr=1e-2)
    optimizer = torch.optim.AdamW(offloaded.parameters(), lr=1e-2)
    resident = sum(8 * p.numel() for p in list(offloaded.parameters())[:resident_layers])
    offload = state_offload.install(optimizer, resident, 8, chunk_bytes=chunk_bytes, smallest_moved_bytes=0)
    train(plain, reference)
    train(offloaded, optimizer)
    for a, b in zip(plain.parameters(), offloaded.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    weights = list(offloaded.parameters())
    assert offload.resident == set(weights[:resident_layers])
    moved = {weight for weight, _ in offload.host}
    assert moved == set(weights[resident_layers:])
    for (weight, key), buffer in offload.host.items():
        assert optimizer.state[weight][key] is buffer
    assert offload.steps == STEPS
    assert all(p.grad is None for p in weights)  # zero_grad after each step; the hidden gradients came back before


def test_gradients_are_back_after_the_step():
    net = model()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    state_offload.install(optimizer, 0, 8, chunk_bytes=1, smallest_moved_bytes=0)
    net(torch.randn(4, 64)).sum().backward()
    gradients = [p.grad.clone() for p in net.parameters()]
    optimizer.step()
    for p, gradient in zip(net.parameters(), gradients):
        torch.testing.assert_close(p.grad, gradient)


def test_a_saved_state_loads_back_into_the_host_buffers_and_training_goes_on_the_same():
    straight, resumed = model(), model()
    reference = torch.optim.AdamW(straight.parameters(), lr=1e-2)
    train(straight, reference, steps=2 * STEPS)

    batches = torch.Generator().manual_seed(1)
    first = torch.optim.AdamW(resumed.parameters(), lr=1e-2)
    state_offload.install(first, 0, 8, chunk_bytes=1, smallest_moved_bytes=0)
    train(resumed, first, generator=batches)
    saved = copy.deepcopy(first.state_dict())
    second = torch.optim.AdamW(resumed.parameters(), lr=1e-2)
    offload = state_offload.install(second, 0, 8, chunk_bytes=1, smallest_moved_bytes=0)
    second.load_state_dict(saved)
    assert {weight for weight, _ in offload.host} == set(resumed.parameters())
    train(resumed, second, generator=batches)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_first_step_check_sees_the_offload_through_accelerates_wrapper():
    from accelerate import Accelerator

    optimizer = torch.optim.AdamW(model().parameters(), lr=1e-2)
    assert state_offload.installed(optimizer) is None
    offload = state_offload.install(optimizer, 0, 8)
    wrapped = Accelerator(cpu=True).prepare_optimizer(optimizer)
    assert wrapped is not optimizer and state_offload.installed(wrapped) is offload


def test_a_paged_optimizer_is_refused():
    optimizer = torch.optim.AdamW(model().parameters(), lr=1e-2)
    optimizer.is_paged = True
    with pytest.raises(ValueError, match="managed memory"):
        state_offload.install(optimizer, 0, 8)


def test_a_saved_torch_optim_state_loads_to_the_host_without_visiting_the_weights_device():
    """torch.optim's own load puts every state tensor beside its weight first: for a state the plan sent to the host
    because it does not fit the GPU, a resumed run would run out of memory there. Weights on the meta device stand in
    for the GPU: a state that went there could not be copied back (meta tensors hold no data)."""
    trained = model()
    first = torch.optim.AdamW(trained.parameters(), lr=1e-2)
    train(trained, first)
    saved = copy.deepcopy(first.state_dict())
    on_meta = model().to("meta")
    weights = list(on_meta.parameters())
    second = torch.optim.AdamW(on_meta.parameters(), lr=1e-2)
    offload = state_offload.install(second, 8 * weights[0].numel(), 8, smallest_moved_bytes=0)
    second.load_state_dict(saved)
    assert offload.resident == {weights[0]} and second.state[weights[0]]["exp_avg"].is_meta  # resident: beside it
    for saved_weight, weight in zip(list(trained.parameters())[1:], weights[1:]):
        for key in ("exp_avg", "exp_avg_sq"):
            assert second.state[weight][key] is offload.host[(weight, key)]
            torch.testing.assert_close(second.state[weight][key], first.state[saved_weight][key], rtol=0, atol=0)
        assert second.state[weight]["step"] == first.state[saved_weight]["step"]
