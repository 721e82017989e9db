"""aitraining 0.0.54 users, without training: its defaults behind its command, YAML and the shared import paths
(AutoTrain's behind `autotrain`), the plan naming them, its settings files accepted, its own settings refused by
name when set, its dataset formats detected and converted. The settings files in tests/data/aitraining were written
by aitraining's own code (generate.py there)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from pydantic import ValidationError

from autotrain.trainers.clm.params import LLMTrainingParams as SharedParams
from autotrain_unsloth.data.files import DataError
from autotrain_unsloth.data.prepare.auto_convert import convert, detect
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import decide
from autotrain_unsloth.plan.types import Environment
from tests.conftest import REPO

FILES = os.path.join(REPO, "tests", "data", "aitraining")
CPU = Environment(model_type="llama")
# aitraining 0.0.54's defaults where AutoTrain 0.8.36's differ (docs/compatibility.md has the same table).
DIFFERING = {"model": ("gpt2", "google/gemma-3-270m"), "quantization": ("int4", None), "merge_adapter": (False, True),
             "save_strategy": (None, "epoch"), "save_steps": (0, 500), "resume_from_checkpoint": ("auto", None)}


def command(name: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    """The installed console script (`aitraining` or `autotrain`), which picks its defaults by its name."""
    path = shutil.which(name, path=os.path.dirname(sys.executable))
    assert path, f"the {name} command is installed"
    return subprocess.run([path, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def cli(capsys, name: str, *args: str) -> subprocess.CompletedProcess:
    """The command's main() in this process (cheaper than a process each), with the defaults its name picks."""
    from autotrain_unsloth.cli import main

    try:
        code = main(list(args), defaults=name)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def test_every_differing_default_follows_the_path_it_came_by():
    stock, shared = LLMTrainingParams(trainer="sft"), SharedParams(trainer="sft")
    for name, (autotrain, aitraining) in DIFFERING.items():
        assert (getattr(stock, name), getattr(shared, name)) == (autotrain, aitraining), name
    # chat_template chosen by trainer (the tokenizer's for the chat trainers), response-only loss where it applies
    assert (stock.chat_template, shared.chat_template) == (None, "tokenizer")
    assert (stock.response_only_loss, shared.response_only_loss) == (False, True)
    plain = SharedParams(trainer="default")
    assert plain.chat_template is None and plain.response_only_loss is False
    # log: wandb where it is installed (aitraining's default); none, said in the plan, where it is not
    wandb = __import__("importlib").util.find_spec("wandb") is not None
    assert shared.log == ("wandb" if wandb else "none") and stock.log == "none"
    # what the user gives stays given, and explicit values win over either tool's defaults
    assert SharedParams(quantization="int4", peft=True).quantization == "int4"
    assert SharedParams(trainer="sft", chat_template="none").chat_template is None
    assert shared.model_fields_set == {"trainer"}
    assert LLMTrainingParams(defaults="aitraining").merge_adapter is True


def test_the_plan_says_whose_defaults_applied():
    plan = decide(SharedParams(trainer="sft", peft=True, lora_r=16, unsloth=True), CPU)
    line = next(reason for reason in plan.reasons if reason.startswith("defaults:"))
    assert "aitraining 0.0.54's" in line and "quantization=None" in line and "merge_adapter=True" in line
    assert "response_only_loss=True" in line and "chat_template='tokenizer'" in line
    stock = decide(LLMTrainingParams(trainer="sft", peft=True), CPU)
    assert any(reason.startswith("defaults: AutoTrain 0.8.36's") for reason in stock.reasons)


def test_aitraining_and_autotrain_commands_dry_run_the_unsloth_page_quick_start(in_tmp, models, data_dir):
    """`aitraining llm --train --model ... --trainer sft --unsloth --peft --lora-r 16`: LoRA on a 16-bit base and a
    merged model in aitraining; `autotrain` keeps AutoTrain's QLoRA and adapter."""
    flags = ["llm", "--dry-run", "--model", models["llama"], "--data-path", data_dir, "--project-name", "quick",
             "--trainer", "sft", "--unsloth", "--peft", "--lora-r", "16", "--chat-template", "none"]
    ours = command("aitraining", *flags, cwd=in_tmp)
    assert ours.returncode == 0, ours.stderr[-2000:]
    assert "LoRA r=16 " in ours.stdout and "LoRA r=16 + int4" not in ours.stdout
    assert "defaults: aitraining 0.0.54's" in ours.stdout and "merge_adapter=True" in ours.stdout
    stock = command("autotrain", *flags, cwd=in_tmp)
    assert stock.returncode == 0, stock.stderr[-2000:]
    assert "LoRA r=16 + int4" in stock.stdout and "defaults: AutoTrain 0.8.36's" in stock.stdout
    module = subprocess.run([sys.executable, "-m", "autotrain.cli.autotrain", *flags], cwd=in_tmp, capture_output=True,
                            text=True, timeout=600)
    assert module.returncode == 0 and "defaults: aitraining 0.0.54's" in module.stdout, module.stderr[-2000:]
    assert not (in_tmp / "quick").exists()


def test_aitraining_yaml_takes_aitraining_defaults_and_autotrain_yaml_autotrains(capsys, in_tmp, models, data_dir):
    (in_tmp / "run.yml").write_text(f"task: llm-sft\nbase_model: {models['llama']}\nproject_name: y\nbackend: local\n"
                                    f"data: {{path: {data_dir}, chat_template: none}}\nparams: {{peft: true}}\n")
    ours = cli(capsys, "aitraining", "--config", "run.yml", "--dry-run")
    assert ours.returncode == 0 and "defaults: aitraining 0.0.54's" in ours.stdout, ours.stderr[-2000:]
    assert "LoRA r=16 + int4" not in ours.stdout
    stock = cli(capsys, "autotrain", "--config", "run.yml", "--dry-run")
    assert stock.returncode == 0 and "LoRA r=16 + int4" in stock.stdout, stock.stderr[-2000:]


@pytest.mark.parametrize("trainer", ["default", "sft", "dpo", "orpo", "reward"])
def test_aitraining_settings_files_load_with_only_what_was_set(trainer):
    data = json.loads(open(os.path.join(FILES, f"{trainer}.json")).read())
    assert len(data) == 153  # every aitraining 0.0.54 setting, most at their defaults
    params = LLMTrainingParams.load(os.path.join(FILES, f"{trainer}.json"))
    assert params.defaults == "aitraining" and params.trainer == trainer
    set_here = params.model_fields_set - {"defaults", "model", "project_name", "data_path", "trainer"}
    assert set_here <= {"peft", "lora_r", "unsloth", "prompt_text_column", "text_column", "rejected_text_column",
                        "dpo_beta", "log"}, set_here
    assert params.merge_adapter is True and params.quantization is None and params.save_strategy == "epoch"
    assert params.chat_template == (None if trainer == "default" else "tokenizer")
    assert "wandb_visualizer not used: aitraining's terminal view of W&B runs." in params.setting_warnings()


@pytest.mark.parametrize("settings, message", [
    ({"use_sweep": True}, "use_sweep=True is an aitraining setting that this backend does not support"),
    ({"attn_implementation": "eager"}, "attn_implementation='eager' is an aitraining setting"),
    ({"trainer": "grpo", "rl_env_module": "m", "rl_env_class": "C"}, "trainer='grpo' (GRPO) is an aitraining trainer"),
    ({"trainer": "ppo"}, "GRPO, PPO, distillation, sweeps"),
])
def test_an_aitraining_setting_this_backend_lacks_is_one_sentence_when_set(settings, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SharedParams(**settings)


def test_aitraining_settings_at_their_defaults_change_nothing():
    with_them = SharedParams(trainer="sft", use_sweep=False, rl_gamma=0.99, vllm_mode="colocate", max_samples=None,
                             ddp_timeout=7200, save_processed_data="auto")
    assert with_them.public_dict() == SharedParams(trainer="sft").public_dict()
    assert with_them.setting_warnings() == SharedParams(trainer="sft").setting_warnings()
    ignored_as_in_aitraining = SharedParams(trainer="sft", rl_gamma=0.5)  # aitraining warns and ignores it too
    assert any("rl_gamma=0.5 not used" in note for note in ignored_as_in_aitraining.setting_warnings())


def test_a_settings_file_with_an_unknown_key_is_refused_by_name(tmp_path):
    path = tmp_path / "training_params.json"
    path.write_text(json.dumps({"model": "m", "lora_rnk": 8}))
    with pytest.raises(ValueError, match="unknown setting 'lora_rnk'; did you mean 'lora_r'"):
        LLMTrainingParams.load(str(path))


ALPACA = [{"instruction": f"Add {i} and 1.", "input": "" if i % 2 else "numbers", "output": str(i + 1)} for i in range(6)]
FORMATS = [
    ("alpaca", ALPACA, [{"role": "user", "content": "Add 0 and 1.\n\nInput: numbers"}, {"role": "assistant", "content": "1"}]),
    ("qa", [{"question": "Capital of France?", "answer": "Paris."}] * 2,
     [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]),
    ("qa", [{"prompt": "Hi", "completion": "Hello"}] * 2,
     [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]),
    ("sharegpt", [{"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"},
                                     {"from": "gpt", "value": "A"}]}] * 2,
     [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]),
    ("messages", [{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}] * 2,
     [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]),
]


@pytest.mark.parametrize("kind, rows, first", FORMATS)
def test_each_documented_format_is_detected_and_converted_to_messages(kind, rows, first):
    from datasets import Dataset

    dataset = Dataset.from_list(rows)
    found, columns = detect(dataset.column_names, dataset[0], "sft")
    assert found == kind
    converted = convert(dataset, found, columns, extension=1, seed=42)
    assert converted.column_names == ["messages"] and len(converted) == len(rows)
    assert converted[0]["messages"] == first


def test_conversation_extension_joins_single_turn_examples_as_aitraining_does():
    from datasets import Dataset

    converted = convert(Dataset.from_list(ALPACA), "alpaca", ("instruction", "input", "output"), extension=3, seed=42)
    assert len(converted) == 2
    turns = [message for row in converted for message in row["messages"]]
    assert [m["role"] for m in converted[0]["messages"]] == ["user", "assistant"] * 3
    assert sorted(m["content"] for m in turns if m["role"] == "assistant") == [str(i + 1) for i in range(6)]
    again = convert(Dataset.from_list(ALPACA), "alpaca", ("instruction", "input", "output"), extension=3, seed=42)
    assert again[0]["messages"] == converted[0]["messages"]  # the shuffle follows the seed


def test_unknown_and_preference_formats(tmp_path):
    from autotrain_unsloth.data.prepare.auto_convert import settings_for

    assert detect(["prompt", "chosen", "rejected"], {}, "dpo")[0] == "preference"
    assert detect(["text"], {"text": "x"}, "default")[0] == "plain_text"
    with pytest.raises(DataError, match="auto_convert_dataset: f.csv is in none of the formats"):
        settings_for(SharedParams(auto_convert_dataset=True), "unknown", (), "f.csv")


def write_rows(folder, rows):
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(folder)


def test_auto_convert_dataset_shows_the_format_in_the_dry_run(capsys, in_tmp, models):
    data = write_rows(in_tmp / "alpaca", ALPACA)
    result = cli(capsys, "aitraining", "llm", "--dry-run", "--model", models["llama"], "--data-path", data, "--project-name",
                     "conv", "--trainer", "sft", "--auto-convert-dataset", "--conversation-extension", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "is Alpaca (instruction/input/output); converted to messages, every 2 examples joined" in result.stdout
    assert "rendered with chatml (aitraining's fallback" in result.stdout  # the tiny tokenizer has no template
    lone = cli(capsys, "aitraining", "llm", "--dry-run", "--model", models["llama"], "--data-path", data,
                   "--conversation-extension", "2")
    assert lone.returncode == 2 and "add --auto-convert-dataset" in lone.stderr


def test_json_text_conversations_without_a_template_are_refused_with_the_fix(capsys, in_tmp, models):
    rows = [{"text": json.dumps([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}])}] * 4
    data = write_rows(in_tmp / "jsontext", rows)
    result = cli(capsys, "autotrain", "llm", "--dry-run", "--model", models["llama"], "--data-path", data, "--trainer", "sft")
    assert result.returncode == 1
    assert "holds conversations as JSON text" in result.stderr and "set --chat-template" in result.stderr


def test_aitraining_default_template_is_not_forced_on_plain_text(capsys, in_tmp, models, data_dir):
    result = cli(capsys, "aitraining", "llm", "--dry-run", "--model", models["llama"], "--data-path", data_dir, "--trainer",
                     "sft", "--peft")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "holds plain text, so aitraining's default chat_template 'tokenizer' is not used" in result.stdout


def test_tokenizer_template_missing_falls_back_or_stops_before_training(capsys, in_tmp, models):
    rows = [{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}] * 4
    data = write_rows(in_tmp / "msgs", rows)
    flags = ["llm", "--dry-run", "--model", models["llama"], "--data-path", data, "--trainer", "sft", "--text-column",
             "messages", "--chat-template", "tokenizer"]
    ours = cli(capsys, "aitraining", *flags)
    assert ours.returncode == 0 and "rendered with chatml (aitraining's fallback" in ours.stdout, ours.stderr[-2000:]
    stock = cli(capsys, "autotrain", *flags)
    assert stock.returncode == 1 and "has no chat template; name one" in stock.stderr


def test_quick_start_with_quantization_int4_asks_qlora_under_aitraining_defaults(capsys, in_tmp, models, data_dir):
    """The same command with `--quantization int4`: QLoRA asked (run where bitsandbytes and a GPU are; the plan says
    why not here), the adapter still merged afterwards into the 16-bit weights, as aitraining does."""
    result = cli(capsys, "aitraining", "llm", "--dry-run", "--model", models["llama"], "--data-path", data_dir, "--trainer",
                 "sft", "--unsloth", "--peft", "--lora-r", "16", "--quantization", "int4")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LoRA r=16 + int4" in result.stdout and "quantization='int4' needs a CUDA GPU" in result.stdout
    assert "merge_adapter=True" in result.stdout


def test_max_samples_cuts_as_aitraining_does(capsys, in_tmp, models, data_dir):
    from datasets import Dataset

    from autotrain_unsloth.data.job.load import at_most

    rows = Dataset.from_dict({"n": list(range(100))})
    assert at_most(rows, 10, training=True)["n"] == list(range(0, 100, 10))  # evenly spaced
    assert at_most(rows, 10, training=False)["n"] == [0, 1]  # validation: a fifth, the first rows
    result = cli(capsys, "aitraining", "llm", "--dry-run", "--model", models["llama"], "--data-path", data_dir,
                 "--max-samples", "10")
    assert result.returncode == 0 and "max_samples=10: at most 10 training rows, evenly spaced" in result.stdout


@pytest.mark.parametrize("settings, trainer_saves, schedule", [
    ({}, "epoch", "every 30 minutes"),
    ({"save_strategy": "steps"}, "no", "every 500 steps and every 30 minutes"),
    ({"save_strategy": "no"}, "no", "never on a schedule"),
    ({"defaults": "autotrain", "save_steps": 500}, "no", "every 500 steps and every 30 minutes"),
])
def test_save_strategy_is_mapped_onto_the_checkpoint_schedule(settings, trainer_saves, schedule):
    plan = decide(SharedParams(**settings), CPU)
    assert plan.save_strategy == trainer_saves
    assert any(reason.startswith(f"checkpoints: {schedule}") for reason in plan.reasons), plan.reasons


def test_save_strategy_steps_needs_steps():
    with pytest.raises(ValidationError, match="save_strategy='steps' needs save_steps of 1 or more"):
        LLMTrainingParams(save_strategy="steps")
