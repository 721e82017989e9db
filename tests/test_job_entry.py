"""The job's other ways in and out: failures raise from create() and exit non-zero from the CLI; the child entry
takes a stock AutoTrain training_params.json; remedies restart the job (Unsloth cannot load the model; out of
memory with checkpointing turned off automatically); a YAML config runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from autotrain_unsloth import AutoTrainProject, LLMTrainingParams
from autotrain_unsloth.project import JobFailed
from tests.conftest import aitraining
from tests.test_train import TOKEN, train_flags

pytestmark = pytest.mark.slow


def test_failing_job_raises_from_create(in_tmp, models, data_dir):
    params = LLMTrainingParams(
        model=models["llama"],
        data_path=data_dir,
        project_name="fails",
        optimizer="adamw_anyprecision",  # a name transformers knows, whose package (torchdistx) is not installed
        max_steps=2,
        quantization=None,
    )
    with pytest.raises(JobFailed) as error:
        AutoTrainProject(params=params, backend="local", process=True).create()
    assert error.value.returncode != 0
    assert "torchdistx" in (in_tmp / "fails" / "autotrain.log").read_text()


def test_failing_job_exits_nonzero_from_the_cli(in_tmp, models, data_dir):
    result = aitraining(*train_flags(models["llama"], data_dir, "fails-cli", "sft", steps=2), "--optimizer", "adamw_anyprecision",
                        cwd=in_tmp)
    assert result.returncode != 0 and "training failed with exit code" in result.stderr


def test_child_entry_accepts_a_stock_training_params_json(in_tmp, models, data_dir):
    """A training_params.json as stock AutoTrain writes it (48 fields, no plan.json): the child plans for itself."""
    from tests.test_params import stock_fields

    stock = dict(stock_fields())
    stock.update(
        model=models["llama"],
        data_path=data_dir,
        project_name="stock",
        trainer="sft",
        peft=True,
        quantization=None,
        lr=1e-2,
        block_size=64,
        batch_size=4,
        gradient_accumulation=1,
        epochs=2,
        logging_steps=2,
    )
    os.makedirs("stock")
    (in_tmp / "stock" / "training_params.json").write_text(json.dumps(stock))
    result = subprocess.run(
        [sys.executable, "-m", "autotrain_unsloth.trainers.clm", "--training_config", "stock/training_params.json"],
        cwd=in_tmp,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Plan for model" in result.stdout  # planned in the child, shown before loading
    plan = json.loads((in_tmp / "stock" / "plan.json").read_text())
    assert plan["method"] == "lora" and plan["verified"]["matches_plan"]
    assert (in_tmp / "stock" / "adapter_model.safetensors").exists()


def restart_job(cwd, failure: str, project: str, plan) -> subprocess.CompletedProcess:
    """Hand the job's failure handler a real exception (`failure`, Python source), as the job does when training
    raises, in a process of its own (the restart replaces that process with the restarted job); returns the
    finished run."""
    code = (
        "import torch; from autotrain_unsloth.params import LLMTrainingParams; from autotrain_unsloth.plan import Plan;"
        "from autotrain_unsloth.backends import UnslothLoadError;"
        "from autotrain_unsloth.trainers.clm.__main__ import recover_or_raise;"
        f"recover_or_raise({failure}, LLMTrainingParams.load('{project}/training_params.json'), "
        f"Plan.from_dict({plan.to_dict()!r}), '{project}/training_params.json')"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_unsloth_load_failure_restarts_the_job_on_transformers(in_tmp, models, data_dir):
    """Everything but the trigger (Unsloth raising at load, which needs a GPU): from a plan that chose Unsloth,
    the job re-plans with the reason, saves it, and re-executes itself, fresh, on the transformers path."""
    import dataclasses

    from autotrain_unsloth.plan import decide
    from tests.test_plan import GPU_UNSLOTH

    params = LLMTrainingParams(
        model=models["llama"],
        data_path=data_dir,
        project_name="fallback",
        trainer="sft",
        unsloth=True,
        peft=True,
        quantization=None,
        max_steps=3,
        block_size=64,
    )
    # The plan a GPU machine makes, carrying this machine's environment so that the restarted job fits here.
    here = dataclasses.replace(GPU_UNSLOTH, cuda=False, bf16=False, gpu_count=0, gpu_name=None)
    unsloth_plan = dataclasses.replace(decide(params, GPU_UNSLOTH), environment=dataclasses.asdict(here))
    assert unsloth_plan.backend == "unsloth"
    params.save("fallback")
    result = restart_job(in_tmp, "UnslothLoadError('ValueError: not this model')", "fallback", unsloth_plan)
    assert "Restarting the job on the transformers path" in result.stdout
    plan = json.loads((in_tmp / "fallback" / "plan.json").read_text())
    assert plan["backend"] == "transformers" and plan["verified"]["matches_plan"]
    assert any("Unsloth failed to load the model (ValueError: not this model)" in warning for warning in plan["warnings"])
    assert (in_tmp / "fallback" / "adapter_model.safetensors").exists()


def test_out_of_memory_with_checkpointing_turned_off_automatically_restarts_with_it_on(in_tmp, models, data_dir):
    """Everything but the trigger (running out of GPU memory): from a plan that turned checkpointing off by
    itself, the job re-plans with checkpointing on, says why, and re-executes itself fresh."""
    import dataclasses

    from autotrain_unsloth.plan import decide, probe
    from autotrain_unsloth.trainers.clm.__main__ import checkpointing_turned_off_automatically

    params = LLMTrainingParams(
        model=models["llama"],
        data_path=data_dir,
        project_name="oom",
        trainer="sft",
        peft=True,
        quantization=None,
        max_steps=3,
        block_size=64,
    )
    here = probe(params)
    on_a_gpu = dataclasses.replace(here, cuda=True, bf16=True, gpu_count=1, gpu_name="H100", gpu_memory_gib=79.19)
    gpu_plan = decide(params, on_a_gpu)
    assert gpu_plan.gradient_checkpointing == "off" and checkpointing_turned_off_automatically(params, gpu_plan)
    assert not checkpointing_turned_off_automatically(
        params.model_copy(update={"disable_gradient_checkpointing": True}), gpu_plan
    )
    # Carry this machine's environment, so that the restarted job fits here.
    gpu_plan = dataclasses.replace(gpu_plan, environment=dataclasses.asdict(here))
    params.save("oom")
    result = restart_job(in_tmp, "torch.OutOfMemoryError('CUDA out of memory')", "oom", gpu_plan)
    assert "Restarting the job with gradient checkpointing on" in result.stdout
    plan = json.loads((in_tmp / "oom" / "plan.json").read_text())
    assert plan["gradient_checkpointing"] == "on" and plan["verified"]["gradient_checkpointing_active"] is True
    assert any("ran out of GPU memory without it" in reason for reason in plan["reasons"])
    assert (in_tmp / "oom" / "adapter_model.safetensors").exists()


def test_yaml_config_runs_end_to_end(in_tmp, models, data_dir):
    (in_tmp / "run.yml").write_text(f"""
task: llm-sft
base_model: {models["llama"]}
project_name: from-yaml
log: none
backend: local
data:
  path: {data_dir}
  train_split: train
  column_mapping:
    text_column: text
params:
  unsloth: true
  peft: true
  quantization: none
  max_steps: 3
  block_size: 64
hub:
  username: ${{HF_USERNAME}}
  token: ${{HF_TOKEN}}
  push_to_hub: false
""")
    result = aitraining("--config", "run.yml", cwd=in_tmp, env={"HF_USERNAME": "someone", "HF_TOKEN": TOKEN})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    plan = json.loads((in_tmp / "from-yaml" / "plan.json").read_text())
    assert (plan["trainer"], plan["method"], plan["backend"]) == ("sft", "lora", "transformers")
    saved = json.loads((in_tmp / "from-yaml" / "training_params.json").read_text())
    assert saved["username"] == "someone" and saved["token"] is None
