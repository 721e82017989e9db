"""torchao's AdamW8bit compiled once (trainers/torchao_adamw.py): the same updates as torchao's own class, and what
the trainers build for optim adamw_torch_8bit. On CPU: torch.compile makes C++ kernels there."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import aitraining, losses

torchao = pytest.importorskip("torchao")

# Weight matrices (8-bit states: 4096 elements or more, a multiple of the block of 256) and a norm vector (too small:
# plain states), as in a decoder.
SHAPES = [(64, 64), (64, 64), (128, 64), (48,)]


def _params(seed: int) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator, dtype=torch.bfloat16)) for shape in SHAPES]


def _dense(state: torch.Tensor) -> torch.Tensor:
    return state.dequantize() if hasattr(state, "dequantize") else state  # torchao's 8-bit state: its float values


def test_compiled_once_updates_the_weights_exactly_as_torchao():
    from torchao.optim import AdamW8bit

    from autotrain_unsloth.trainers.torchao_adamw import AdamW8bitCompiledOnce

    theirs, ours = _params(0), _params(0)
    groups = lambda params: [{"params": params[:3], "weight_decay": 0.1}, {"params": params[3:], "weight_decay": 0.0}]  # noqa: E731
    optimizers = [AdamW8bit(groups(theirs), lr=1e-2, betas=(0.9, 0.99), eps=1e-8),
                  AdamW8bitCompiledOnce(groups(ours), lr=1e-2, betas=(0.9, 0.99), eps=1e-8)]
    start = [p.detach().clone() for p in ours]
    generator = torch.Generator().manual_seed(1)
    for step in range(4):
        for p_theirs, p_ours in zip(theirs, ours):
            grad = torch.randn(p_ours.shape, generator=generator, dtype=torch.bfloat16)
            p_theirs.grad, p_ours.grad = grad.clone(), grad.clone()
        for group in (*optimizers[0].param_groups, *optimizers[1].param_groups):
            group["lr"].fill_(1e-2 / (step + 1))  # a schedule, as the Trainer's scheduler sets it
        for optimizer in optimizers:
            optimizer.step()
    for p_theirs, p_ours, p_start in zip(theirs, ours, start):
        assert torch.equal(p_theirs, p_ours)
        assert not torch.equal(p_ours, p_start)
    for p_theirs, p_ours in zip(theirs, ours):
        state_theirs, state_ours = optimizers[0].state[p_theirs], optimizers[1].state[p_ours]
        assert type(state_ours["exp_avg"]) is type(state_theirs["exp_avg"])
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(_dense(state_theirs[name]), _dense(state_ours[name])), name
        assert state_ours["step"].item() == 4
    assert type(optimizers[1].state[ours[0]]["exp_avg"]).__name__ == "OptimState8bit"


def test_a_checkpointed_optimizer_resumes_exactly(tmp_path):
    """What a resumed run does with adamw_torch_8bit: the Trainer saves optimizer.state_dict() in the checkpoint and
    loads it into a fresh optimizer; the next steps equal those of the run that never stopped."""
    from autotrain_unsloth.trainers.torchao_adamw import AdamW8bitCompiledOnce

    def grads(step):
        generator = torch.Generator().manual_seed(100 + step)
        return [torch.randn(shape, generator=generator, dtype=torch.bfloat16) for shape in SHAPES]

    def run(params, optimizer, steps):
        for step in steps:
            for param, grad in zip(params, grads(step)):
                param.grad = grad
            optimizer.step()

    whole = _params(0)
    optimizer = AdamW8bitCompiledOnce(whole, lr=1e-2)
    run(whole, optimizer, range(4))

    stopped = _params(0)
    first = AdamW8bitCompiledOnce(stopped, lr=1e-2)
    run(stopped, first, range(2))
    torch.save(first.state_dict(), tmp_path / "optimizer.pt")
    resumed = [torch.nn.Parameter(p.detach().clone()) for p in stopped]
    second = AdamW8bitCompiledOnce(resumed, lr=1e-2)
    second.load_state_dict(torch.load(tmp_path / "optimizer.pt", weights_only=True))  # as the Trainer loads it
    run(resumed, second, range(2, 4))
    for p_whole, p_resumed in zip(whole, resumed):
        assert torch.equal(p_whole, p_resumed)


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["default", "sft"])
def test_trainers_run_adamw_torch_8bit_as_the_compiled_once_class(in_tmp, models, data_dir, trainer):
    project = f"{trainer}-torchao"
    result = aitraining("llm", "--train", "--model", models["llama"], "--data-path", data_dir, "--project-name", project,
                        "--trainer", trainer, "--max-steps", "20", "--batch-size", "4", "--block-size", "64",
                        "--logging-steps", "1", "--warmup-ratio", "0", "--lr", "3e-3", "--optimizer", "adamw_torch_8bit",
                        cwd=in_tmp)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((in_tmp / project / "run_summary.json").read_text())
    assert summary["optimizer"] == "adamw_torch_8bit"
    assert summary["optimizer_class"] == "autotrain_unsloth.trainers.torchao_adamw.AdamW8bitCompiledOnce"
    curve = losses(in_tmp / project)
    assert sum(curve[-5:]) / 5 < sum(curve[:5]) / 5 - 0.3, curve


def test_adamw_torch_8bit_gets_the_compiled_once_class_unless_torchao_differs(tmp_path, monkeypatch, capsys):
    from torchao.optim import AdamW8bit
    from transformers import TrainingArguments

    from autotrain_unsloth.trainers import torchao_adamw

    args = TrainingArguments(output_dir=str(tmp_path), optim="adamw_torch_8bit", learning_rate=3e-4, adam_beta2=0.95,
                             use_cpu=True, report_to="none")
    cls, kwargs = torchao_adamw.transformers_cls_and_kwargs(args)
    assert cls is torchao_adamw.AdamW8bitCompiledOnce
    assert (kwargs["lr"], kwargs["betas"], kwargs["block_size"]) == (3e-4, (0.9, 0.95), 256)
    # Another torchao whose update takes other arguments: its own class runs, and the console says so.
    monkeypatch.setattr(torchao_adamw, "SINGLE_PARAM_ADAM_ARGUMENTS", ("p", "grad"))
    cls, fallback_kwargs = torchao_adamw.transformers_cls_and_kwargs(args)
    assert cls is AdamW8bit and fallback_kwargs == kwargs
    assert "runs as torchao's own AdamW8bit" in capsys.readouterr().out
