"""A run that cannot learn stops and says so: float settings that are not finite or out of range, a loss that goes
nan, answers cut away by the block size, a damaged checkpoint, two runs into one folder, Ctrl-C. Real settings,
real files, real CPU runs of a few steps on the tiny models."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys

import pytest
from pydantic import ValidationError

from autotrain_unsloth import LLMTrainingParams
from autotrain_unsloth.checkpoints import MARKER, resume_settings
from autotrain_unsloth.cli import main
from autotrain_unsloth.plan import PlanError, make_plan
from autotrain_unsloth.project_lock import HOLDER, LOCK, holding
from tests.conftest import aitraining


@pytest.mark.parametrize("name, value, words", [
    ("lr", math.inf, "lr=inf: the learning rate must be a finite number greater than 0."),
    ("lr", "nan", "lr=nan: the learning rate must be a finite number greater than 0."),
    ("lr", 10**400, "lr=inf: the learning rate must be a finite number"),
    ("warmup_ratio", 1.5, "warmup_ratio=1.5: the share of steps spent warming up must be a finite number at least 0 and "
                          "below 1."),
    ("weight_decay", -0.1, "weight_decay=-0.1: the weight decay must be a finite number at least 0."),
    ("max_grad_norm", "-inf", "max_grad_norm=-inf: the gradient clipping norm (0: no clipping) must be"),
    ("lora_dropout", 1.0, "lora_dropout=1.0: the LoRA dropout probability must be a finite number at least 0 and below 1"),
    ("dpo_beta", math.nan, "dpo_beta=nan: DPO's beta must be a finite number greater than 0."),
    ("save_minutes", math.inf, "save_minutes=inf: the minutes between checkpoints"),
])
def test_float_settings_are_finite_and_in_range(name, value, words):
    with pytest.raises(ValidationError) as error:
        LLMTrainingParams(**{name: value})
    assert words in str(error.value)


def test_every_float_setting_refuses_inf_and_nan():
    floats = [name for name, field in LLMTrainingParams.model_fields.items() if field.annotation is float]
    assert {"lr", "warmup_ratio", "weight_decay", "max_grad_norm", "lora_dropout", "dpo_beta"} <= set(floats)
    for name in floats:
        for value in (math.inf, -math.inf, math.nan):
            with pytest.raises(ValidationError, match=f"{name}="):
                LLMTrainingParams(**{name: value})


def test_the_cli_refuses_lr_inf_in_one_line(capsys):
    assert main(["llm", "--train", "--lr", "inf"]) == 2
    err = capsys.readouterr().err
    assert "lr=inf: the learning rate must be a finite number greater than 0." in err and "Traceback" not in err


def small_run(model, data, project, *extra) -> list[str]:
    return ["llm", "--train", "--model", model, "--data-path", data, "--project-name", project, "--block-size", "64",
            "--batch-size", "2", "--gradient-accumulation", "1", "--logging-steps", "1", *extra]


@pytest.mark.slow
def test_a_run_whose_loss_goes_nan_stops_there_and_keeps_the_last_checkpoint(in_tmp, models, data_dir):
    run = aitraining(*small_run(models["llama"], data_dir, "nan", "--max-steps", "8", "--lr", "1e30", "--save-steps", "1",
                                "--warmup-ratio", "0"), cwd=in_tmp)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output[-3000:]
    found = re.search(r"Error: training stopped at step (\d+): the (loss|gradient norm) is nan, not a finite number, so "
                      r"the model cannot learn; the last finite loss was [\d.]+ at step (\d+); nothing of this step was "
                      r"saved and no final model was written; the newest checkpoint, nan/checkpoint-(\d+), is kept .*; "
                      r"try a lower learning rate \(--lr, now 1e\+30\)\.", output)
    assert found, output[-3000:]
    step, last_finite, kept = int(found.group(1)), int(found.group(3)), int(found.group(4))
    assert last_finite == kept == step - 1
    assert (in_tmp / "nan" / f"checkpoint-{kept}" / MARKER).exists()
    assert not (in_tmp / "nan" / f"checkpoint-{step}").exists()
    finished_looking = {"model.safetensors", "README.md", "run_summary.json", "trainer_state.json", "config.json"}
    assert finished_looking.isdisjoint(os.listdir(in_tmp / "nan"))
    log = (in_tmp / "nan" / "autotrain.log").read_text()
    assert "'loss': 'nan'" in log or "'grad_norm': 'nan'" in log  # the step is logged as it was, never as 0
    assert "'loss': '0'" not in log and "'loss': 0.0" not in log


def test_fp16_skipped_steps_are_normal_a_nan_loss_is_not(in_tmp, models, data_dir):
    import torch
    from transformers import TrainerControl, TrainerState

    from autotrain_unsloth.trainers.divergence import divergence_guard

    params = LLMTrainingParams(model=models["llama"], data_path=data_dir, project_name="p")
    plan = make_plan(params)

    def step(plan, loss, grad_norm):
        guard, control = divergence_guard(params, plan), TrainerControl(should_save=True)
        guard.losses, guard.grad_norm = [torch.tensor(loss)], torch.tensor(grad_norm)
        guard.on_step_end(None, TrainerState(global_step=5), control)
        return guard.message, control

    assert step(dataclasses.replace(plan, autocast="fp16"), 2.0, math.inf) == (None, TrainerControl(should_save=True))
    message, control = step(dataclasses.replace(plan, autocast="fp16"), math.nan, math.inf)
    assert message.startswith("training stopped at step 5: the loss is nan")
    assert "or --mixed-precision bf16 in place of fp16" in message and "no checkpoint was saved before it" in message
    assert control.should_training_stop and control.should_log and not control.should_save
    message, _ = step(dataclasses.replace(plan, autocast="bf16"), 2.0, math.inf)
    assert message.startswith("training stopped at step 5: the gradient norm is inf")


def long_prompt_chat(path, rows: int, short: int = 0) -> None:
    os.makedirs(path)
    with open(os.path.join(path, "train.jsonl"), "w") as f:
        for index in range(rows):
            prompt = "hi" if index < short else f"Please tell me, in a few words, what the capital of country {index} is."
            f.write(json.dumps({"messages": [{"role": "user", "content": prompt},
                                             {"role": "assistant", "content": f"It is city {index}."}]}) + "\n")


CHAT = ["--trainer", "sft", "--chat-template", "chatml", "--response-only-loss"]


@pytest.mark.slow
def test_answers_all_cut_away_by_the_block_size_are_refused_before_loading(in_tmp, models):
    long_prompt_chat(str(in_tmp / "chat"), 6)
    run = aitraining(*small_run(models["llama"], "chat", "cut", "--max-steps", "2", *CHAT), "--block-size", "16",
                     cwd=in_tmp)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output[-3000:]
    assert ("Error: response_only_loss (train split): 6 of 6 examples have no answer token to learn from: 6 have their "
            "whole answer cut away by block_size 16 (the prompt alone fills it); --block-size ") in output
    assert "Loaded model" not in output and "Traceback" not in output


@pytest.mark.slow
def test_some_answers_cut_away_are_a_warning_in_the_plan(in_tmp, models):
    long_prompt_chat(str(in_tmp / "chat"), 6, short=4)
    run = aitraining(*small_run(models["llama"], "chat", "some", "--max-steps", "1", *CHAT), "--block-size", "20",
                     cwd=in_tmp)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    warnings = json.loads((in_tmp / "some" / "plan.json").read_text())["warnings"]
    assert any(warning.startswith("response_only_loss (train split): 2 of 6 examples have no answer token")
               for warning in warnings), warnings


def test_some_answers_cut_away_are_a_warning_with_the_count(in_tmp, models, capsys):
    from datasets import Dataset

    from autotrain_unsloth.data.job.load import load_tokenizer
    from autotrain_unsloth.trainers.sft import check_answers_kept, tokenized_conversations

    long_prompt_chat(str(in_tmp / "chat"), 6, short=4)
    params = LLMTrainingParams(model=models["llama"], data_path="chat", trainer="sft", chat_template="chatml",
                               response_only_loss=True, text_column="messages")
    rows = Dataset.from_json("chat/train.jsonl")
    tokens = tokenized_conversations(rows, params, load_tokenizer(params, 20))
    returned = check_answers_kept(tokens, 20, "train")
    out = capsys.readouterr().out
    assert returned and f"Warning: {returned}" in out  # returned for the plan's warnings
    found = re.search(r"Warning: response_only_loss \(train split\): 2 of 6 examples have no answer token to learn from: "
                      r"2 have their whole answer cut away by block_size 20 .*; --block-size (\d+) keeps at least the start "
                      r"of every answer", out)
    assert found, out
    check_answers_kept(tokens, int(found.group(1)), "train")  # the block size it names keeps them
    assert "Warning" not in capsys.readouterr().out


def fake_checkpoint(folder, params, damage: str | None = None) -> None:
    """A checkpoint's files as the Trainer writes them (safetensors, torch.save's zip, JSON), one cut in half."""
    import torch
    from safetensors.torch import save_file

    from autotrain_unsloth.data.prepare.local_data import prepared_settings

    os.makedirs(folder)
    save_file({"lora_A": torch.ones(64, 64)}, os.path.join(folder, "adapter_model.safetensors"))
    torch.save({"state": torch.ones(1000)}, os.path.join(folder, "optimizer.pt"))
    with open(os.path.join(folder, "trainer_state.json"), "w") as f:
        json.dump({"global_step": 1}, f)
    with open(os.path.join(folder, MARKER), "w") as f:
        json.dump({"step": int(folder.rsplit("-", 1)[1]), "settings": resume_settings(prepared_settings(params))}, f)
    if damage:
        path = os.path.join(folder, damage)
        os.truncate(path, os.path.getsize(path) // 2)


def test_a_damaged_checkpoint_is_named_before_it_loads(in_tmp, models, data_dir, capsys):
    params = LLMTrainingParams(model=models["llama"], data_path=data_dir, project_name="p", trainer="sft")
    fake_checkpoint("p/checkpoint-10", params)
    fake_checkpoint("p/checkpoint-20", params, damage="adapter_model.safetensors")
    with pytest.raises(PlanError, match=r"the checkpoint p/checkpoint-20 is damaged: adapter_model.safetensors is cut "
                                        r"short \([\d,]+ bytes; its header describes [\d,]+\); resume from the earlier "
                                        r"p/checkpoint-10 \(--resume-from-checkpoint p/checkpoint-10\), or start over "
                                        r"with --resume-from-checkpoint none \(nothing was deleted\)"):
        make_plan(params)
    assert make_plan(params.model_copy(update={"resume_from_checkpoint": "p/checkpoint-10"})).resume_from == \
        "p/checkpoint-10"
    fake_checkpoint("p/checkpoint-5", params, damage="optimizer.pt")
    with pytest.raises(PlanError, match=r"p/checkpoint-5 is damaged: optimizer.pt cannot be read \(BadZipFile"):
        make_plan(params.model_copy(update={"resume_from_checkpoint": "p/checkpoint-5"}))
    (in_tmp / "p" / "checkpoint-10" / "trainer_state.json").write_text('{"global_step":')
    code = main(["llm", "--dry-run", "--model", models["llama"], "--data-path", data_dir, "--project-name", "p",
                 "--trainer", "sft"])
    err = capsys.readouterr().err
    assert code == 1 and "the checkpoint p/checkpoint-20 is damaged" in err and "Traceback" not in err
    assert "there is no earlier checkpoint to resume from; start over with --resume-from-checkpoint none" in err
    assert sorted(os.listdir("p")) == ["checkpoint-10", "checkpoint-20", "checkpoint-5"]  # nothing deleted


def test_one_run_at_a_time_in_a_project_folder(in_tmp, models, data_dir, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import time\nfrom autotrain_unsloth.project_lock import holding\n"
                               "with holding('p'):\n    print('held', flush=True)\n    time.sleep(120)"],
                              cwd=in_tmp, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = main(small_run(models["llama"], data_dir, "p", "--max-steps", "2"))
        err = capsys.readouterr().err
        assert code == 1, err
        assert (f"Error: the project folder p/ is in use by another run (process {holder.pid}); wait for it to end, "
                "stop it, or use another --project-name") in err
        assert sorted(os.listdir("p")) == [LOCK, HOLDER]  # the second run wrote nothing
    finally:
        holder.kill()  # SIGKILL: no clean-up; the kernel releases the lock, the holder's pid file stays
        holder.wait()
    with holding("p"):
        assert (in_tmp / "p" / HOLDER).read_text().strip() == str(os.getpid())
    assert (f"Note: p/ was held by process {holder.pid}, which ended without releasing it; this run takes it over."
            in capsys.readouterr().out)
    assert not (in_tmp / "p" / HOLDER).exists()


@pytest.mark.slow
def test_ctrl_c_is_sigint_130_and_leaves_no_model_card(in_tmp, models, data_dir):
    run = small_run(models["llama"], data_dir, "stopped", "--trainer", "sft", "--peft", "--quantization", "none",
                    "--max-steps", "400")
    job = subprocess.Popen([sys.executable, "-m", "autotrain_unsloth.cli", *run], cwd=in_tmp, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in job.stdout:
        seen.append(line)
        if "'loss'" in line:
            job.send_signal(signal.SIGINT)  # as Ctrl-C in a terminal, once training runs
            break
    output = "".join(seen) + job.stdout.read()
    assert job.wait() == 130, output[-2000:]
    assert "stopped by SIGINT at step" in output and "Error: the job stopped on SIGINT" in output
    step = int(output.split("stopped by SIGINT at step ")[1].split(";")[0])
    assert (in_tmp / "stopped" / f"checkpoint-{step}" / MARKER).exists()
    left = set(os.listdir(in_tmp / "stopped"))
    assert left == {"autotrain-data", "autotrain.log", "plan.json", "training_params.json", f"checkpoint-{step}", LOCK}
