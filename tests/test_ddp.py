"""Two processes on CPU (torchrun with gloo, as a launcher runs one process per GPU): the real job trains under
DDP, every output is written once by rank 0, and the loss falls."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from autotrain_unsloth import LLMTrainingParams
from tests.conftest import losses

pytestmark = pytest.mark.slow


def test_two_processes_train_and_write_each_output_once(in_tmp, models, data_dir):
    params = LLMTrainingParams(model=models["llama"], data_path=data_dir, project_name="ddp2", trainer="sft", peft=True,
                               quantization=None, max_steps=20, block_size=64, batch_size=2, gradient_accumulation=1,
                               lr=1e-2, logging_steps=1, warmup_ratio=0)
    params.save("ddp2")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "autotrain_unsloth.trainers.clm", "--training_config", "ddp2/training_params.json"],
                            cwd=in_tmp, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    # Each of the job's own lines, and so each file they accompany, comes from rank 0 alone.
    for line in ("Plan for model", "Loaded model:", "Gradient checkpointing active at the first step", "Saved to ddp2/"):
        assert out.count(line) == 1, (line, out[-3000:])
    folder = in_tmp / "ddp2"
    assert not [name for name in os.listdir(folder) if name.endswith(".tmp")]
    plan = json.loads((folder / "plan.json").read_text())
    assert plan["verified"]["matches_plan"] is True
    state = json.loads((folder / "trainer_state.json").read_text())
    assert state["global_step"] == 20
    curve = losses(folder)
    assert sum(curve[-5:]) / 5 < sum(curve[:5]) / 5 - 0.2, curve
    for name in ("adapter_model.safetensors", "run_summary.json", "README.md", "tokenizer.json"):
        assert (folder / name).exists(), name


def test_a_remedy_does_not_restart_one_rank_alone(monkeypatch):
    import torch

    from autotrain_unsloth.plan import decide
    from autotrain_unsloth.trainers.clm.__main__ import NoRestartUnderLauncher, recover_or_raise
    from tests.test_plan_automatic import H100

    params = LLMTrainingParams(model="/m", trainer="sft", peft=True, quantization=None)
    plan = decide(params, H100)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(NoRestartUnderLauncher, match="with 2 processes the job does not restart itself"):
        recover_or_raise(torch.OutOfMemoryError("CUDA out of memory"), params, plan, "x/training_params.json")
