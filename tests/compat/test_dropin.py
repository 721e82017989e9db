"""Real-world AutoTrain and aitraining inputs, run unchanged on a tiny Llama: data files in the formats those
tools take, their import paths and commands, shipped-config settings, and aitraining-only settings refused by
name. The inputs are written here in the layouts the tools' documentation shows (not copied)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import aitraining, losses

pytestmark = pytest.mark.slow
QUICK = ["--trainer", "sft", "--max-steps", "4", "--batch-size", "2", "--gradient-accumulation", "1", "--block-size",
         "64", "--logging-steps", "1", "--peft", "--quantization", "none", "--lr", "1e-2"]
CHAT_TEMPLATE = ("{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + eos_token }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}")
QA = [("What is the capital of France?", "Paris."), ("What is two plus two?", "Four."), ("Name a colour.", "Blue.")] * 4


@pytest.fixture
def chat_model(models, tmp_path):
    """The tiny Llama, its tokenizer given a chat template (as instruction-tuned models ship one)."""
    folder = tmp_path / "chat-llama"
    shutil.copytree(models["llama"], folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": CHAT_TEMPLATE}))
    return str(folder)


def trained(folder, saved: str = "adapter_model.safetensors") -> bool:
    plan = json.loads((folder / "plan.json").read_text())
    return plan["verified"]["matches_plan"] and len(losses(folder)) == 4 and (folder / saved).exists()


def test_sharegpt_json_array_file_with_the_tokenizer_template(in_tmp, chat_model):
    """Unsloth integration page: `--data-path ./sharegpt_data.json --use-sharegpt-mapping`, no --chat-template."""
    rows = [{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]} for q, a in QA]
    (in_tmp / "sharegpt_data.json").write_text(json.dumps(rows, indent=1))
    result = aitraining("llm", "--train", "--model", chat_model, "--data-path", "./sharegpt_data.json", "--project-name",
                        "sharegpt", "--text-column", "conversations", "--use-sharegpt-mapping", *QUICK, cwd=in_tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rendered with the tokenizer's own chat template" in result.stdout
    assert trained(in_tmp / "sharegpt")


def test_sharegpt_without_a_template_anywhere_is_one_sentence(in_tmp, models):
    rows = [{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]} for q, a in QA]
    (in_tmp / "conversations.json").write_text(json.dumps(rows))
    result = aitraining("llm", "--train", "--model", models["llama"], "--data-path", "conversations.json", "--project-name",
                        "no-template", "--text-column", "conversations", "--use-sharegpt-mapping", *QUICK, cwd=in_tmp)
    assert result.returncode != 0 and "has no chat template; name one" in result.stdout + result.stderr


@pytest.mark.parametrize("name, write", [
    ("corpus.txt", lambda path, texts: path.write_text("\n".join(texts) + "\n")),
    ("medical_texts.json", lambda path, texts: path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))),
    ("new_data.parquet", lambda path, texts: __import__("datasets").Dataset.from_dict({"text": texts}).to_parquet(str(path))),
])
def test_a_data_file_as_data_path(in_tmp, models, texts, name, write):
    write(in_tmp / name, texts)
    result = aitraining("llm", "--train", "--model", models["llama"], "--data-path", f"./{name}", "--project-name",
                        name.split(".")[0].replace("_", "-"), *QUICK, cwd=in_tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    assert trained(in_tmp / name.split(".")[0].replace("_", "-"))


def test_autotrain_import_paths_and_child_module(in_tmp, models, data_dir):
    """AutoTrain's quickstart and the Unsloth integration page's Python example, then AutoTrain's child command."""
    code = f"""
from autotrain.project import AutoTrainProject
from autotrain.trainers.clm.params import LLMTrainingParams

params = LLMTrainingParams(model={models["llama"]!r}, data_path={data_dir!r}, project_name="my_llm_project", trainer="sft",
                           peft=True, quantization=None, max_steps=4, block_size=64, batch_size=2, lr=1e-2, logging_steps=1)
AutoTrainProject(params=params, backend="local", process=True).create()
params.model_copy(update={{"project_name": "child-run"}}).save("child-run")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=in_tmp, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # The shared import path has aitraining's defaults, as that example documents: the adapter is merged.
    assert trained(in_tmp / "my_llm_project", saved="model.safetensors")
    assert not (in_tmp / "my_llm_project" / "adapter_model.safetensors").exists()
    # The job as stock AutoTrain launches it, from a training_params.json alone.
    child = subprocess.run([sys.executable, "-m", "autotrain.trainers.clm", "--training_config",
                            "child-run/training_params.json"], cwd=in_tmp, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    assert trained(in_tmp / "child-run", saved="model.safetensors")


def test_autotrain_command_runs_a_shipped_style_config_and_dry_runs_it(in_tmp, models, data_dir):
    """AutoTrain's configs: ${HF_USERNAME} with push_to_hub false and no such variable; paged_adamw_8bit with no
    bitsandbytes or GPU here (the plan substitutes adamw_torch and says so)."""
    (in_tmp / "config.yml").write_text(f"""
task: llm-sft
base_model: {models["llama"]}
project_name: autotrain-llama
log: tensorboard
backend: local
data:
  path: {data_dir}
  train_split: train
  valid_split: null
  chat_template: null
  column_mapping:
    text_column: text
params:
  block_size: 64
  max_steps: 4
  batch_size: 2
  gradient_accumulation: 1
  lr: 1e-2
  optimizer: paged_adamw_8bit
  peft: true
  quantization: null
hub:
  username: ${{HF_USERNAME}}
  token: ${{HF_TOKEN}}
  push_to_hub: false
""")
    env = {key: value for key, value in os.environ.items() if key not in ("HF_USERNAME", "HF_TOKEN")}
    autotrain = shutil.which("autotrain", path=os.path.dirname(sys.executable))
    assert autotrain, "the `autotrain` command is installed beside `aitraining`"
    dry = subprocess.run([autotrain, "--config", "config.yml", "--dry-run"], cwd=in_tmp, capture_output=True, text=True,
                         env=env, timeout=600)
    assert dry.returncode == 0 and "Plan for model" in dry.stdout, dry.stderr[-2000:]
    assert not (in_tmp / "autotrain-llama").exists()  # a dry run writes nothing
    run = subprocess.run([autotrain, "--config", "config.yml"], cwd=in_tmp, capture_output=True, text=True, env=env,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    plan = json.loads((in_tmp / "autotrain-llama" / "plan.json").read_text())
    assert plan["optimizer"] == "adamw_torch"
    assert any("optimizer='paged_adamw_8bit' needs bitsandbytes" in warning for warning in plan["warnings"])


@pytest.mark.parametrize("flags, message", [
    (["--use-sweep"], "use_sweep is an aitraining setting that this backend does not support"),
    (["--rl-gamma", "0.9"], "rl_gamma is an aitraining setting that this backend does not support"),
    (["--learning-rate", "1e-4"], "AutoTrain renamed it: --lr"),
])
def test_settings_this_backend_lacks_are_named(flags, message):
    result = aitraining("llm", "--train", *flags)
    assert result.returncode == 2 and message in result.stderr


def test_aitraining_yaml_settings_are_named_too(in_tmp):
    (in_tmp / "x.yml").write_text("task: llm-sft\nbase_model: m\nproject_name: p\nbackend: local\ndata: {path: d}\n"
                                  "params: {use_vllm: true, save_strategy: steps, lora_rnk: 8}\n")
    result = aitraining("--config", "x.yml", cwd=in_tmp)
    assert result.returncode != 0
    assert "unknown setting 'lora_rnk'; did you mean 'lora_r'?" in result.stderr  # a file's typo: an error
    (in_tmp / "x.yml").write_text("task: llm-sft\nbase_model: m\nproject_name: p\nbackend: local\ndata: {path: d}\n"
                                  "params: {use_vllm: true, save_strategy: steps, use_sweep: false}\n")
    result = aitraining("--config", "x.yml", cwd=in_tmp)
    assert result.returncode != 0
    assert "use_vllm=True is an aitraining setting that this backend does not support" in result.stderr
    assert "save_strategy" not in result.stderr and "use_sweep" not in result.stderr  # implemented; at its default


def test_a_conversations_column_is_found_and_the_dry_run_says_so(in_tmp, chat_model):
    """The usual ShareGPT layout: a `conversations` column and no `text` column, no flags about either."""
    (in_tmp / "data").mkdir()
    rows = [{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]} for q, a in QA]
    (in_tmp / "data" / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    common = ["llm", "--model", chat_model, "--data-path", "data", "--project-name", "found", *QUICK]
    dry = aitraining(*common, "--dry-run", cwd=in_tmp)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "training on its 'conversations' column (ShareGPT from/value turns)" in dry.stdout
    run = aitraining(*common, "--train", cwd=in_tmp)
    assert run.returncode == 0, run.stderr[-3000:]
    assert trained(in_tmp / "found")


@pytest.mark.parametrize("template", ["llama3", "gemma3"])
def test_aitraining_template_names_train(in_tmp, models, template):
    """aitraining's CLI lines: `--chat-template llama3`, `--chat-template gemma3` on messages data."""
    (in_tmp / "chat").mkdir()
    rows = [{"text": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in QA]
    (in_tmp / "chat" / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = aitraining("llm", "--train", "--model", models["llama"], "--data-path", "chat", "--project-name", template,
                        "--chat-template", template, *QUICK, cwd=in_tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    assert trained(in_tmp / template)
    saved = json.loads((in_tmp / template / "tokenizer_config.json").read_text())
    assert saved["eos_token"] == {"llama3": "<|eot_id|>", "gemma3": "<end_of_turn>"}[template]


@pytest.mark.parametrize("task, trainer", [("llm-dpo", "dpo"), ("llm-orpo", "orpo"), ("llm-reward", "reward")])
def test_preference_tasks_in_yaml_plan_their_trainer(in_tmp, models, task, trainer):
    (in_tmp / "pref").mkdir()
    (in_tmp / "pref" / "train.jsonl").write_text(json.dumps({"prompt": "q", "chosen": "yes", "rejected": "no"}) + "\n")
    (in_tmp / "p.yml").write_text(f"task: {task}\nbase_model: {models['llama']}\nproject_name: p\nbackend: local\n"
                                  "data:\n  path: pref\n  column_mapping: {prompt_text_column: prompt, text_column: chosen, "
                                  "rejected_text_column: rejected}\nparams: {peft: true, quantization: null}\n")
    result = aitraining("--config", "p.yml", "--dry-run", cwd=in_tmp)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(rf"trainer\s+{trainer}\s+{trainer}", result.stdout), result.stdout
