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


def test_sigterm_to_two_processes_saves_one_checkpoint_and_the_rerun_resumes(in_tmp, models, data_dir):
    """As a scheduler stops a job: SIGTERM to the launcher's process group. Both ranks stop at the same step, rank 0
    marks the checkpoint complete, and the job resumes from it. (Resumed here in one process: transformers loads a
    multi-process checkpoint's optimizer onto `args.device`, which on CPU is "cpu:0", a location torch cannot
    restore; on GPUs it is the rank's cuda device.)"""
    import signal

    params = LLMTrainingParams(model=models["llama"], data_path=data_dir, project_name="ddp-stop", trainer="sft",
                               peft=True, quantization=None, max_steps=400, block_size=64, batch_size=2,
                               gradient_accumulation=1, lr=1e-2, logging_steps=1, warmup_ratio=0)
    params.save("ddp-stop")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
              "-m", "autotrain_unsloth.trainers.clm", "--training_config", "ddp-stop/training_params.json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(launch, cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                           start_new_session=True)
    seen = []
    for line in job.stdout:
        seen.append(line)
        if sum("'loss'" in line for line in seen) >= 5:
            os.killpg(job.pid, signal.SIGTERM)
            break
    output = "".join(seen) + job.stdout.read()
    assert job.wait() != 0, output[-3000:]
    assert output.count("stopped by SIGTERM at step") == 1, output[-3000:]  # said once, by rank 0
    step = int(output.split("stopped by SIGTERM at step ")[1].split(";")[0])
    from autotrain_unsloth.checkpoints import MARKER, latest_checkpoint

    assert (in_tmp / "ddp-stop" / f"checkpoint-{step}" / MARKER).exists()
    assert latest_checkpoint(str(in_tmp / "ddp-stop"))["step"] == step

    params.model_copy(update={"max_steps": step + 3}).save("ddp-stop")
    os.remove(in_tmp / "ddp-stop" / "plan.json")  # the job plans again, finding the checkpoint
    again = subprocess.run([sys.executable, "-m", "autotrain_unsloth.trainers.clm", "--training_config",
                            "ddp-stop/training_params.json"], cwd=in_tmp, capture_output=True, text=True, timeout=600,
                           env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"resume: from ddp-stop/checkpoint-{step}" in again.stdout
    assert json.loads((in_tmp / "ddp-stop" / "trainer_state.json").read_text())["global_step"] == step + 3
