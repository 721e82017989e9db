"""aitraining 0.0.54 users, training a tiny Llama: its settings files (written by aitraining's own code,
tests/data/aitraining) through `python -m autotrain.trainers.clm --training_config` and in process through
`train_clm_<trainer>.train(config)`, and the Unsloth page's quick start producing what aitraining's documentation
says (a merged model, response-only loss). Only the model, data and project of each file are replaced."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow
FILES = os.path.join(REPO, "tests", "data", "aitraining")
QA = [("What is the capital of France?", "Paris."), ("What is two plus two?", "Four."), ("Name a colour.", "Blue."),
      ("Say hello.", "Hello.")] * 2
PAIRS = [{"prompt": q, "chosen": a, "rejected": "I do not know."} for q, a in QA]


def settings_file(tmp_path, trainer: str, model: str) -> str:
    """aitraining's file for `trainer`, pointed at local data and a project folder given as an absolute path."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    rows = {"default": [{"text": f"{q} {a}"} for q, a in QA],
            "sft": [{"text": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in QA]}
    (data / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows.get(trainer, PAIRS)))
    settings = json.loads(open(os.path.join(FILES, f"{trainer}.json")).read())
    settings.update(model=model, data_path=str(data), project_name=str(tmp_path / "runs" / trainer))
    path = tmp_path / f"{trainer}.json"
    path.write_text(json.dumps(settings))
    return str(path)


def finished(project) -> dict:
    assert os.path.isfile(os.path.join(project, "run_summary.json")), os.listdir(project)
    return json.loads(open(os.path.join(project, "plan.json")).read())


@pytest.mark.parametrize("trainer", ["default", "sft", "dpo", "orpo", "reward"])
def test_aitraining_settings_file_runs_as_the_job(tmp_path, models, trainer):
    path = settings_file(tmp_path, trainer, models["llama"])
    result = subprocess.run([sys.executable, "-m", "autotrain.trainers.clm", "--training_config", path], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    project = tmp_path / "runs" / trainer
    plan = finished(project)
    # aitraining: full fine-tuning without --peft; with it, LoRA on a 16-bit base (no quantization unless asked)
    assert plan["verified"]["matches_plan"] and plan["method"] == ("full" if trainer == "default" else "lora")
    assert any(reason.startswith("defaults: aitraining 0.0.54's") for reason in plan["reasons"])
    if trainer != "reward":  # aitraining merges the adapter (a reward model keeps its score head beside it)
        assert (project / "model.safetensors").exists() and not (project / "adapter_model.safetensors").exists()
    if trainer == "sft":
        assert "loss on the assistant's turns only" in result.stdout  # response_only_loss, aitraining's default
    if trainer == "orpo":  # ORPO's beta is dpo_beta, as in aitraining (0.2 in that file)
        import torch

        assert torch.load(project / "training_args.bin", weights_only=False).beta == 0.2


def test_train_clm_sft_in_process_with_a_dict_and_with_params(tmp_path, models):
    """aitraining's pipelines: `train_clm_sft.train(config)` with the file's dict, and `autotrain.trainers.clm.train`
    with a params object, in the calling process (no child); the same plan.json and outputs as the job."""
    path = settings_file(tmp_path, "sft", models["llama"])
    code = f"""
import json
from autotrain.trainers.clm import train_clm_sft, train
from autotrain.trainers.clm.params import LLMTrainingParams

train_clm_sft.train(json.load(open({path!r})))
params = LLMTrainingParams(model={models["llama"]!r}, data_path={str(tmp_path / "data")!r}, trainer="sft",
                           project_name={str(tmp_path / "runs" / "params")!r}, peft=True, max_samples=2)
train(params)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "Launching:" not in result.stdout  # no child process was started
    seen = {}
    for name in ("sft", "params"):
        plan = finished(tmp_path / "runs" / name)
        assert plan["verified"]["matches_plan"] and plan["trainer"] == "sft"
        state = json.loads((tmp_path / "runs" / name / "trainer_state.json").read_text())
        seen[name] = state["num_input_tokens_seen"]
    assert 0 < seen["params"] * 3 < seen["sft"]  # max_samples=2: two of the eight rows


def test_train_clm_module_refuses_another_trainer(tmp_path, models):
    from autotrain.trainers.clm import train_clm_dpo
    from autotrain.trainers.clm.params import LLMTrainingParams
    from autotrain_unsloth.plan import PlanError

    with pytest.raises(PlanError, match="train_clm_dpo.train\\(\\) runs the dpo trainer, and the settings say trainer='sft'"):
        train_clm_dpo.train(LLMTrainingParams(model=models["llama"], trainer="sft", project_name=str(tmp_path / "x")))
    assert not (tmp_path / "x").exists()


def test_unsloth_after_transformers_in_process_is_refused_with_the_fix():
    """In process, Unsloth's path needs unsloth imported before transformers: said, with the fix, before training."""
    import transformers  # noqa: F401

    from autotrain_unsloth.in_process import unsloth_import_problem

    if "unsloth" in sys.modules:
        pytest.skip("unsloth was imported first in this process")
    assert "put `import unsloth` first" in unsloth_import_problem()


def test_the_unsloth_page_quick_start_through_the_aitraining_command(tmp_path, models):
    """`aitraining llm --train --model ... --trainer sft --unsloth --peft --lora-r 16` on chat data: 16-bit LoRA
    (Unsloth falls back without a GPU, saying so), response-only loss and a merged model, as aitraining documents."""
    import shutil

    settings_file(tmp_path, "sft", models["llama"])  # writes tmp_path/data
    aitraining = shutil.which("aitraining", path=os.path.dirname(sys.executable))
    result = subprocess.run([aitraining, "llm", "--train", "--model", models["llama"], "--data-path", "data",
                             "--project-name", "quick", "--trainer", "sft", "--unsloth", "--peft", "--lora-r", "16",
                             "--epochs", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    plan = finished(tmp_path / "quick")
    assert plan["method"] == "lora" and plan["asked"]["response_only_loss"] is True
    assert (tmp_path / "quick" / "model.safetensors").exists()
    saved = json.loads((tmp_path / "quick" / "training_params.json").read_text())
    assert saved["defaults"] == "aitraining" and saved["merge_adapter"] is True and saved["quantization"] is None
