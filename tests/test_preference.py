"""The dpo, orpo and reward trainers on CPU through the three entry points (CLI, YAML, Python API), on a tiny
Llama and preference pairs a model can learn: the loss falls, DPO's reward margin rises, the reward model
ranks the chosen answer above the rejected one, and the outputs load back. Bad preference data stops the run
with the column and the row named, before anything is written."""

from __future__ import annotations

import json
import os
import random

import pytest
import torch

from autotrain_unsloth import AutoTrainProject, LLMTrainingParams
from autotrain_unsloth.data.files import DataError
from autotrain_unsloth.data.prepare.local_data import prepare_local_data
from tests.conftest import aitraining, losses

pytestmark = pytest.mark.slow
CAPITALS = [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Germany", "Berlin"), ("Japan", "Tokyo"),
            ("Egypt", "Cairo"), ("Peru", "Lima"), ("Kenya", "Nairobi")]
REJECTED = ["I do not know.", "No idea, sorry.", "Bananas are yellow."]
QUICK = ["--max-steps", "30", "--batch-size", "4", "--gradient-accumulation", "1", "--block-size", "64",
         "--logging-steps", "1", "--warmup-ratio", "0", "--peft", "--quantization", "none", "--lr", "1e-2"]


def pairs() -> list[dict]:
    pick = random.Random(0)
    return [{"prompt": f"What is the capital of {country}?", "chosen": f"The capital of {country} is {capital}.",
             "rejected": pick.choice(REJECTED)} for country, capital in CAPITALS * 4]


@pytest.fixture
def preference_dir(in_tmp) -> str:
    os.makedirs("pref")
    with open("pref/train.jsonl", "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in pairs())
    return "pref"


def history(project: str) -> list[dict]:
    with open(os.path.join(project, "trainer_state.json")) as f:
        return [entry for entry in json.load(f)["log_history"] if "loss" in entry]


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def test_dpo_through_the_cli_raises_the_margin_and_reloads(in_tmp, models, preference_dir):
    result = aitraining("llm", "--train", "--model", models["llama"], "--data-path", preference_dir, "--project-name",
                        "dpo", "--trainer", "dpo", "--prompt-text-column", "prompt", "--text-column", "chosen",
                        "--rejected-text-column", "rejected", "--dpo-beta", "0.1", *QUICK, cwd=in_tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    steps = history("dpo")
    assert mean(s["loss"] for s in steps[-5:]) < mean(s["loss"] for s in steps[:5]) - 0.2, steps
    assert mean(s["rewards/margins"] for s in steps[-5:]) > mean(s["rewards/margins"] for s in steps[:5]) + 0.5
    plan = json.loads((in_tmp / "dpo" / "plan.json").read_text())
    assert (plan["trainer"], plan["method"], plan["verified"]["matches_plan"]) == ("dpo", "lora", True)

    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    model = AutoPeftModelForCausalLM.from_pretrained(in_tmp / "dpo")
    tokenizer = AutoTokenizer.from_pretrained(in_tmp / "dpo")
    inputs = tokenizer("What is the capital of France?", return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert output.shape[1] > inputs["input_ids"].shape[1]


def test_orpo_through_a_yaml_config(in_tmp, models, preference_dir):
    (in_tmp / "orpo.yml").write_text(f"""
task: llm-orpo
base_model: {models["llama"]}
project_name: orpo
backend: local
data:
  path: {preference_dir}
  train_split: train
  column_mapping:
    prompt_text_column: prompt
    text_column: chosen
    rejected_text_column: rejected
params:
  block_size: 64
  max_prompt_length: 32
  max_completion_length: 24
  max_steps: 30
  batch_size: 4
  gradient_accumulation: 1
  logging_steps: 1
  warmup_ratio: 0
  lr: 1e-2
  peft: true
  quantization: null
""")
    result = aitraining("--config", "orpo.yml", cwd=in_tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    curve = losses(in_tmp / "orpo")
    assert mean(curve[-5:]) < mean(curve[:5]) - 0.2, curve
    assert json.loads((in_tmp / "orpo" / "plan.json").read_text())["trainer"] == "orpo"


def test_reward_through_the_python_api_ranks_chosen_above_rejected(in_tmp, models, preference_dir):
    params = LLMTrainingParams(model=models["llama"], data_path=preference_dir, project_name="reward", trainer="reward",
                               text_column="chosen", rejected_text_column="rejected", block_size=64, max_steps=30,
                               batch_size=4, gradient_accumulation=1, logging_steps=1, warmup_ratio=0, lr=1e-2,
                               peft=True, quantization=None, merge_adapter=True)
    AutoTrainProject(params=params, backend="local", process=True).create()
    steps = history("reward")
    assert mean(s["accuracy"] for s in steps[-5:]) > 0.75, steps

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(in_tmp / "reward").eval()  # merged
    tokenizer = AutoTokenizer.from_pretrained(in_tmp / "reward")
    with torch.no_grad():
        scores = [(model(**tokenizer(row["chosen"], return_tensors="pt")).logits.item(),
                   model(**tokenizer(row["rejected"], return_tensors="pt")).logits.item()) for row in pairs()]
    assert sum(chosen > rejected for chosen, rejected in scores) > 0.8 * len(scores), scores
    card = (in_tmp / "reward" / "README.md").read_text()
    assert "AutoModelForSequenceClassification" in card and "reward-model" in card


def write_rows(rows: list[dict]) -> None:
    os.makedirs("bad", exist_ok=True)
    with open("bad/train.jsonl", "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)


@pytest.mark.parametrize("broken, message", [
    ({"rejected": ""}, r"bad/train.jsonl: line 3: column 'rejected' \(rejected_text_column\) is empty"),
    ({"rejected": "The capital of Italy is Rome."}, r"line 3: the chosen answer \('chosen'\) equals the rejected one"),
    ({"prompt": None}, r"line 3: column 'prompt' \(prompt_text_column\) is empty"),
])
def test_bad_preference_rows_are_named_and_nothing_is_written(in_tmp, broken, message):
    rows = pairs()[:5]
    rows[2] = {**rows[2], **broken}
    write_rows(rows)
    params = LLMTrainingParams(data_path="bad", project_name="p", trainer="dpo", prompt_text_column="prompt",
                               text_column="chosen", rejected_text_column="rejected")
    with pytest.raises(DataError, match=message):
        prepare_local_data(params)
    assert not os.path.exists("p")


def test_a_missing_preference_column_is_named(in_tmp):
    write_rows([{"prompt": "q", "chosen": "a"}])
    params = LLMTrainingParams(data_path="bad", project_name="p", trainer="reward", text_column="chosen",
                               rejected_text_column="rejected")
    with pytest.raises(DataError, match=r"no column 'rejected' \(rejected_text_column\)"):
        prepare_local_data(params)


def test_preference_rows_from_other_sources_are_checked_in_the_job(models):
    """Hub datasets skip the local munging: the job checks the rows itself."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from autotrain_unsloth.data.job.preference import preference_rows

    data = Dataset.from_list([{"p": "q", "c": "same", "r": "same"}])
    params = LLMTrainingParams(data_path="org/data", trainer="dpo", prompt_text_column="p", text_column="c",
                               rejected_text_column="r")
    with pytest.raises(DataError, match=r"row 1: the chosen answer \('c'\) equals the rejected one \('r'\)"):
        preference_rows(data, params, AutoTokenizer.from_pretrained(models["llama"]), "train")


def test_chat_preference_rows_split_each_conversation_at_its_last_turn(models):
    """AutoTrain's rule: the prompt is every turn but the last; prompt + answer is the conversation rendered once."""
    from datasets import Dataset

    from autotrain_unsloth.data.job.load import load_tokenizer
    from autotrain_unsloth.data.job.preference import preference_rows

    user = {"role": "user", "content": "What is the capital of France?"}
    data = Dataset.from_list([{"chosen": [user, {"role": "assistant", "content": "Paris."}],
                               "rejected": [user, {"role": "assistant", "content": "No idea."}]}])
    params = LLMTrainingParams(model=models["llama"], trainer="dpo", chat_template="chatml", text_column="chosen",
                               rejected_text_column="rejected")
    tokenizer = load_tokenizer(params, 64)
    row = preference_rows(data, params, tokenizer, "train")[0]
    assert row["prompt"] == "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    assert (row["chosen"], row["rejected"]) == ("Paris.<|im_end|>\n", "No idea.<|im_end|>\n")


def test_long_prompts_are_cut_to_max_prompt_length_keeping_their_end(models, capsys):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from autotrain_unsloth.data.job.preference import preference_rows

    tokenizer = AutoTokenizer.from_pretrained(models["llama"])
    prompt = " ".join(["the capital of France is Paris"] * 20) + " and the end"
    data = Dataset.from_list([{"p": prompt, "c": "yes", "r": "no"}, {"p": "short", "c": "yes", "r": "no"}])
    params = LLMTrainingParams(data_path="org/data", trainer="orpo", prompt_text_column="p", text_column="c",
                               rejected_text_column="r", max_prompt_length=16)
    rows = preference_rows(data, params, tokenizer, "train")
    assert len(tokenizer(rows[0]["prompt"], add_special_tokens=False)["input_ids"]) <= 16
    assert rows[0]["prompt"].endswith("and the end") and rows[1]["prompt"] == "short"
    assert "1 of 2 rows cut to max_prompt_length=16" in capsys.readouterr().out


ENTRY_POINTS = [(trainer, entry) for trainer in ("dpo", "orpo", "reward") for entry in ("cli", "yaml", "api")
                if (trainer, entry) not in (("dpo", "cli"), ("orpo", "yaml"), ("reward", "api"))]  # those: above


@pytest.mark.parametrize("trainer, entry", ENTRY_POINTS)
def test_every_preference_trainer_through_every_entry_point(in_tmp, models, preference_dir, trainer, entry):
    columns = {"text_column": "chosen", "rejected_text_column": "rejected",
               **({"prompt_text_column": "prompt"} if trainer != "reward" else {})}
    settings = dict(block_size=64, max_steps=20, batch_size=4, gradient_accumulation=1, logging_steps=1, warmup_ratio=0,
                    lr=1e-2, peft=True, quantization=None)
    project = f"{trainer}-{entry}"
    if entry == "cli":
        flags = [f"--{key.replace('_', '-')}" if value is True else [f"--{key.replace('_', '-')}", str(value)]
                 for key, value in {**columns, **settings, "quantization": "none"}.items()]
        flat = [part for flag in flags for part in ([flag] if isinstance(flag, str) else flag)]
        result = aitraining("llm", "--train", "--model", models["llama"], "--data-path", preference_dir,
                            "--project-name", project, "--trainer", trainer, *flat, cwd=in_tmp)
        assert result.returncode == 0, result.stderr[-3000:]
    elif entry == "yaml":
        import yaml

        config = {"task": f"llm-{trainer}", "base_model": models["llama"], "project_name": project, "backend": "local",
                  "data": {"path": preference_dir, "column_mapping": columns}, "params": settings}
        (in_tmp / "run.yml").write_text(yaml.safe_dump(config))
        result = aitraining("--config", "run.yml", cwd=in_tmp)
        assert result.returncode == 0, result.stderr[-3000:]
    else:
        params = LLMTrainingParams(model=models["llama"], data_path=preference_dir, project_name=project,
                                   trainer=trainer, **columns, **settings)
        AutoTrainProject(params=params, backend="local", process=True).create()
    steps = history(project)
    assert mean(s["loss"] for s in steps[-5:]) < mean(s["loss"] for s in steps[:5]), steps
    plan = json.loads((in_tmp / project / "plan.json").read_text())
    assert (plan["trainer"], plan["verified"]["matches_plan"]) == (trainer, True)
    assert (in_tmp / project / "adapter_model.safetensors").exists()
