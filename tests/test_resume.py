"""Runs that survive: a run killed with SIGKILL after a checkpoint resumes from it and trains exactly as if it
had never stopped; SIGTERM saves a checkpoint at the next step and exits non-zero; a finished project is never
overwritten silently; a checkpoint made for other settings is refused, naming them. CPU, real runs, fp32."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from autotrain_unsloth import LLMTrainingParams
from autotrain_unsloth.checkpoints import MARKER
from tests.conftest import aitraining

pytestmark = pytest.mark.slow
METHODS = {"lora": ["--peft", "--quantization", "none", "--lr", "1e-2"], "full": ["--lr", "3e-3"]}


def flags(model, data, project, trainer, method, steps=60):
    return ["llm", "--train", "--model", model, "--data-path", data, "--project-name", project, "--trainer", trainer,
            "--max-steps", str(steps), "--save-steps", "20", "--batch-size", "2", "--gradient-accumulation", "1",
            "--block-size", "64", "--logging-steps", "1", "--warmup-ratio", "0", "--lora-dropout", "0.1",
            *METHODS[method]]


def step_losses(project) -> dict[int, float]:
    with open(os.path.join(project, "trainer_state.json")) as f:
        return {entry["step"]: entry["loss"] for entry in json.load(f)["log_history"] if "loss" in entry}


def weights(project) -> dict:
    from safetensors.torch import load_file

    name = "adapter_model.safetensors" if os.path.exists(os.path.join(project, "adapter_model.safetensors")) \
        else "model.safetensors"
    return load_file(os.path.join(project, name))


@pytest.mark.parametrize("trainer, method", [("sft", "lora"), ("default", "full")])
def test_a_killed_run_resumes_from_its_checkpoint_as_if_it_never_stopped(in_tmp, models, data_dir, trainer, method):
    whole = aitraining(*flags(models["llama"], data_dir, "whole", trainer, method), cwd=in_tmp)
    assert whole.returncode == 0, whole.stderr[-3000:]

    command = [sys.executable, "-m", "autotrain_unsloth.cli", *flags(models["llama"], data_dir, "killed", trainer, method)]
    job = subprocess.Popen(command, cwd=in_tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    marker = in_tmp / "killed" / "checkpoint-20" / MARKER
    while not marker.exists() and job.poll() is None:
        time.sleep(0.01)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert marker.exists() and not (in_tmp / "killed" / "run_summary.json").exists(), "killed after it finished"

    again = aitraining(*flags(models["llama"], data_dir, "killed", trainer, method), cwd=in_tmp)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resume: from killed/checkpoint-" in again.stdout
    plan = json.loads((in_tmp / "killed" / "plan.json").read_text())
    resumed_at = int(plan["resume_from"].rsplit("-", 1)[1])
    assert resumed_at >= 20
    before, after = step_losses(in_tmp / "whole"), step_losses(in_tmp / "killed")
    assert sorted(after) == sorted(before) == list(range(1, 61))
    assert max(abs(before[step] - after[step]) for step in range(resumed_at + 1, 61)) < 1e-5
    reference, resumed = weights(in_tmp / "whole"), weights(in_tmp / "killed")
    assert reference.keys() == resumed.keys()
    assert max((reference[name] - resumed[name]).abs().max().item() for name in reference) < 1e-5


def test_sigterm_saves_a_checkpoint_exits_nonzero_and_the_rerun_resumes(in_tmp, models, data_dir):
    run = flags(models["llama"], data_dir, "stopped", "sft", "lora", steps=400)
    job = subprocess.Popen([sys.executable, "-m", "autotrain_unsloth.cli", *run], cwd=in_tmp, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in job.stdout:
        seen.append(line)
        if sum("'loss'" in line for line in seen) >= 5:
            job.send_signal(signal.SIGTERM)  # to the aitraining process, as `kill` or a scheduler sends it
            break
    output = "".join(seen) + job.stdout.read()
    assert job.wait() == 128 + signal.SIGTERM, output[-2000:]
    assert "stopped by SIGTERM at step" in output and "Run the same command again to resume" in output
    step = int(output.split("stopped by SIGTERM at step ")[1].split(";")[0])
    assert (in_tmp / "stopped" / f"checkpoint-{step}" / MARKER).exists()
    assert not (in_tmp / "stopped" / "run_summary.json").exists()
    assert not (in_tmp / "stopped" / "README.md").exists()  # no model card until training ends well

    run[run.index("--max-steps") + 1] = str(step + 3)  # how long to train is not a setting a checkpoint is tied to
    again = aitraining(*run, cwd=in_tmp)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resume: from stopped/checkpoint-{step}" in again.stdout
    assert json.loads((in_tmp / "stopped" / "trainer_state.json").read_text())["global_step"] == step + 3


def test_a_finished_project_is_not_overwritten_without_asking(in_tmp, models, data_dir):
    os.makedirs("done")
    (in_tmp / "done" / "run_summary.json").write_text("{}")
    base = ["llm", "--dry-run", "--model", models["llama"], "--data-path", data_dir, "--project-name", "done"]
    refused = aitraining(*base, cwd=in_tmp)
    assert refused.returncode != 0
    assert "the project folder done/ holds a finished run" in refused.stderr and "--overwrite-project" in refused.stderr
    allowed = aitraining(*base, "--overwrite-project", cwd=in_tmp)
    assert allowed.returncode == 0 and "the finished run in done/ is deleted before this one starts" in allowed.stdout
    assert (in_tmp / "done" / "run_summary.json").exists()  # a dry run deletes nothing


def test_a_checkpoint_made_for_other_settings_is_refused_naming_them(in_tmp, models, data_dir):
    from autotrain_unsloth.checkpoints import resume_settings
    from autotrain_unsloth.data.prepare.local_data import prepared_settings
    from autotrain_unsloth.plan import PlanError, make_plan

    params = LLMTrainingParams(model=models["llama"], data_path=data_dir, project_name="p", trainer="sft", lr=1e-3)
    checkpoint = in_tmp / "p" / "checkpoint-20"
    checkpoint.mkdir(parents=True)
    made_for = {**resume_settings(prepared_settings(params)), "lr": 2e-3, "lora_r": 8}
    (checkpoint / MARKER).write_text(json.dumps({"step": 20, "settings": made_for}))
    with pytest.raises(PlanError, match=r"p/checkpoint-20 was made for other settings \(lora_r, lr differ\)"):
        make_plan(params)
    assert make_plan(params.model_copy(update={"resume_from_checkpoint": None})).resume_from is None
    (checkpoint / MARKER).write_text(json.dumps({"step": 20, "settings": resume_settings(prepared_settings(params))}))
    assert make_plan(params.model_copy(update={"max_steps": 500})).resume_from == "p/checkpoint-20"
    (checkpoint / MARKER).unlink()  # cut short while saving: never resumed from
    assert make_plan(params).resume_from is None
