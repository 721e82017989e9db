"""Real fine-tunes on CPU through the real entry points: the loss falls, outputs load back and generate,
the token is written nowhere, failures propagate."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest
import torch

from autotrain_unsloth import AutoTrainProject, LLMTrainingParams
from autotrain_unsloth.project import JobFailed
from tests.conftest import aitraining, losses

pytestmark = pytest.mark.slow
TOKEN = "hf_test_token_must_not_leak_1234"
METHODS = {"lora": ["--peft", "--quantization", "none", "--lr", "1e-2"], "full": ["--lr", "3e-3"]}


def train_flags(model, data, project, trainer, steps=35):
    return [
        "llm",
        "--train",
        "--model",
        model,
        "--data-path",
        data,
        "--project-name",
        project,
        "--trainer",
        trainer,
        "--max-steps",
        str(steps),
        "--batch-size",
        "4",
        "--gradient-accumulation",
        "1",
        "--block-size",
        "64",
        "--logging-steps",
        "1",
        "--warmup-ratio",
        "0",
        "--token",
        TOKEN,
    ]


def generate(model, tokenizer) -> torch.Tensor:
    inputs = tokenizer("Question: What is the capital of France?\nAnswer:", return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert output.shape[1] > inputs["input_ids"].shape[1]  # it generated (it may stop early at EOS)
    return output


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("trainer", ["default", "sft"])
def test_training_lowers_the_loss_and_output_loads(in_tmp, models, data_dir, trainer, method):
    project = f"{trainer}-{method}"
    result = aitraining(*train_flags(models["llama"], data_dir, project, trainer), *METHODS[method], cwd=in_tmp)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder = in_tmp / project

    curve = losses(folder)
    assert len(curve) >= 30
    assert sum(curve[-5:]) / 5 < sum(curve[:5]) / 5 - 0.3, curve  # LoRA on a random 140k-parameter model: about 0.6

    plan = json.loads((folder / "plan.json").read_text())
    assert (plan["backend"], plan["method"], plan["trainer"]) == ("transformers", method, trainer)
    assert plan["verified"]["matches_plan"] is True
    assert plan["verified"]["gradient_checkpointing_active"] is True  # planned "on", seen on at the first step
    for name in (
        "training_params.json",
        "README.md",
        "tokenizer.json",
        "trainer_state.json",
        "run_summary.json",
        "autotrain.log",
    ):
        assert (folder / name).exists(), name

    # Throughput over the 25 steps after the 10 warm-up steps, in the real tokens the Trainer counted: whole
    # 64-token blocks for the default trainer (an epoch's last batch has fewer), unpadded lengths for sft.
    summary = json.loads((folder / "run_summary.json").read_text())
    assert (summary["optimizer"], summary["optimizer_class"]) == ("adamw_torch", "torch.optim.adamw.AdamW")
    speed = summary["throughput"]
    assert speed["measured_steps"] == 25 and speed["tokens_per_s"] > 0
    assert len(speed["step_s"]) == 25 and all(t > 0 for t in speed["step_s"])
    assert speed["median_step_s"] == pytest.approx(sorted(speed["step_s"])[12], abs=1e-4)
    assert speed["alloc_retries"] is None and speed["train_reserved_peak_gib"] is None  # no CUDA here
    start, end = speed["measured_window_unix"]
    assert end - start == pytest.approx(sum(speed["step_s"]), abs=0.01)
    state = json.loads((folder / "trainer_state.json").read_text())
    seen = {entry["step"]: entry["num_input_tokens_seen"] for entry in state["log_history"] if "loss" in entry}
    assert speed["measured_tokens"] == seen[35] - seen[10]
    per_step = [seen[step] - seen[step - 1] for step in range(11, 36)]
    assert all(0 < tokens <= 4 * 64 for tokens in per_step)
    if trainer == "default":
        assert all(tokens % 64 == 0 for tokens in per_step)
    else:
        assert any(tokens % 64 for tokens in per_step)  # padding is not counted

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if method == "lora":
        from peft import AutoPeftModelForCausalLM

        assert (folder / "adapter_model.safetensors").exists() and not (folder / "model.safetensors").exists()
        generate(AutoPeftModelForCausalLM.from_pretrained(folder), tokenizer)
    else:
        generate(AutoModelForCausalLM.from_pretrained(folder), tokenizer)

    leaked = [
        path
        for path in glob.glob(str(folder / "**" / "*"), recursive=True)
        if os.path.isfile(path) and TOKEN.encode() in open(path, "rb").read()
    ]
    assert leaked == []
    assert TOKEN not in result.stdout + result.stderr


def test_merge_adapter_keeps_the_model_dtype(in_tmp, models, data_dir):
    result = aitraining(
        *train_flags(models["llama-bf16"], data_dir, "merged", "default", steps=5),
        *METHODS["lora"],
        "--merge-adapter",
        cwd=in_tmp,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = in_tmp / "merged"
    assert glob.glob(str(folder / "adapter_*")) == []
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype="auto")
    assert model.dtype == torch.bfloat16
    generate(model, AutoTokenizer.from_pretrained(folder))


def conversation(question: str, answer: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})


def test_chat_template_lora_with_validation_and_tensorboard(in_tmp, models):
    os.makedirs("chat")
    with open("chat/train.jsonl", "w") as f:
        f.writelines(conversation(f"Capital number {i}?", f"City {i}.") + "\n" for i in range(16))
    with open("chat/valid.jsonl", "w") as f:
        f.writelines(conversation(f"Capital number {i}?", f"City {i}.") + "\n" for i in range(4))
    result = aitraining(
        *train_flags(models["llama"], "chat", "chat", "sft", steps=8),
        *METHODS["lora"],
        "--chat-template",
        "chatml",
        "--text-column",
        "messages",
        "--valid-split",
        "valid",
        "--eval-strategy",
        "steps",
        "--log",
        "tensorboard",
        cwd=in_tmp,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    state = json.loads((in_tmp / "chat" / "trainer_state.json").read_text())
    assert any("eval_loss" in entry for entry in state["log_history"])  # the validation split was used
    assert glob.glob(str(in_tmp / "chat" / "runs" / "**" / "events.out.tfevents.*"), recursive=True)
    adapter = json.loads((in_tmp / "chat" / "adapter_config.json").read_text())
    assert adapter["trainable_token_indices"]  # the chat template's new tokens were trained


def test_failing_job_raises_from_create(in_tmp, models, data_dir):
    params = LLMTrainingParams(
        model=models["llama"],
        data_path=data_dir,
        project_name="fails",
        optimizer="no_such_optimizer",
        max_steps=2,
        quantization=None,
    )
    with pytest.raises(JobFailed) as error:
        AutoTrainProject(params=params, backend="local", process=True).create()
    assert error.value.returncode != 0
    assert "no_such_optimizer" in (in_tmp / "fails" / "autotrain.log").read_text()


def test_failing_job_exits_nonzero_from_the_cli(in_tmp, models, data_dir):
    result = aitraining(*train_flags(models["llama"], data_dir, "fails-cli", "sft", steps=2), "--optimizer", "nope", cwd=in_tmp)
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
