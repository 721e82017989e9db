"""Runs that survive, on a CUDA GPU: a Llama-3.1-8B-shaped QLoRA run on Unsloth's path, killed with SIGKILL once
its checkpoint at step 30 is complete, resumes from it when the same command is run again, and its losses after
the checkpoint follow an uninterrupted run's; the same with bitsandbytes' 8-bit AdamW state. The two
runs start together, so their steps 1-30 (the same command, before any kill) measure the bf16 noise between two
runs; the curves go to <name>-curves.json."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from autotrain_unsloth.checkpoints import MARKER
from tests.gpu.conftest import build_llama_shape
from tests.gpu.test_unsloth_gpu import run_cli

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(importlib.util.find_spec("unsloth") is None, reason="needs unsloth installed"),
]

STEPS, KILLED_AFTER = 40, 30


def flags(model, data, project, *extra):
    return ["--train", "--model", model, "--data-path", data, "--project-name", project, "--trainer", "sft",
            "--unsloth", "--peft", "--quantization", "int4", "--lora-dropout", "0", "--lr", "1e-3",
            "--max-steps", str(STEPS), "--save-steps", "10", "--batch-size", "2", "--gradient-accumulation", "1",
            "--block-size", "256", "--logging-steps", "1", "--warmup-ratio", "0", "--seed", "7", *extra]


def step_losses(project_dir) -> dict[int, float]:
    with open(os.path.join(project_dir, "trainer_state.json")) as f:
        return {entry["step"]: entry["loss"] for entry in json.load(f)["log_history"] if "loss" in entry}


def largest_relative_difference(a: dict, b: dict, steps) -> float:
    return max(abs(a[step] - b[step]) / abs(b[step]) for step in steps)


def kill_and_resume(model, workdir, data_dir, name, *extra) -> dict:
    """Two runs of one command start together; one is killed with SIGKILL once its checkpoint at KILLED_AFTER is
    complete and then run again. Returns both curves, the noise before the kill and the difference after it."""
    command = [sys.executable, "-m", "autotrain_unsloth.cli", "llm"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    whole_name, killed_name = f"{name}-whole", f"{name}-killed"
    logs = {project: open(os.path.join(workdir, f"cli-{project}-first.log"), "w") for project in (whole_name, killed_name)}
    whole = subprocess.Popen(command + flags(model, data_dir, whole_name, *extra), cwd=workdir, env=env,
                             stdout=logs[whole_name], stderr=subprocess.STDOUT)
    killed = subprocess.Popen(command + flags(model, data_dir, killed_name, *extra), cwd=workdir, env=env,
                              stdout=logs[killed_name], stderr=subprocess.STDOUT, start_new_session=True)
    marker = os.path.join(workdir, killed_name, f"checkpoint-{KILLED_AFTER}", MARKER)
    while not os.path.exists(marker) and killed.poll() is None:
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert os.path.exists(marker), f"the run ended before its checkpoint at step {KILLED_AFTER}"
    assert not os.path.exists(os.path.join(workdir, killed_name, "run_summary.json")), "killed after it finished"
    finished = whole.wait(timeout=900)
    for log in logs.values():
        log.close()
    assert finished == 0, f"the uninterrupted run failed: see cli-{whole_name}-first.log"

    run_cli(workdir, *flags(model, data_dir, killed_name, *extra))
    with open(os.path.join(workdir, killed_name, "plan.json")) as f:
        plan = json.load(f)
    assert (plan["backend"], plan["method"]) == ("unsloth", "qlora-4bit"), plan["reasons"]
    assert plan["resume_from"].endswith(f"checkpoint-{KILLED_AFTER}")
    assert plan["verified"]["matches_plan"] is True

    reference = step_losses(os.path.join(workdir, whole_name))
    resumed = step_losses(os.path.join(workdir, killed_name))
    assert sorted(reference) == sorted(resumed) == list(range(1, STEPS + 1))
    with open(os.path.join(workdir, whole_name, "run_summary.json")) as f:
        optimizer_class = json.load(f)["optimizer_class"]
    result = {"uninterrupted": reference, "killed_and_resumed": resumed, "optimizer_class": optimizer_class,
              "noise_before": largest_relative_difference(resumed, reference, range(1, KILLED_AFTER + 1)),
              "difference_after_resume": largest_relative_difference(resumed, reference, range(KILLED_AFTER + 1, STEPS + 1))}
    with open(os.path.join(workdir, f"{name}-curves.json"), "w") as f:
        json.dump(result, f, indent=1)
    # The curve must move, or a resume that lost the adapter or the optimizer state could not be told apart.
    assert reference[KILLED_AFTER] < 0.8 * reference[1], reference
    # Two runs of one command differ only by bf16 kernel rounding; after the resume the difference may not grow
    # beyond it (a floor of 0.5% allows for noise that happened to be zero before the kill). A resume from fresh
    # LoRA weights or a fresh optimizer state moves the loss by far more within a step or two.
    assert result["difference_after_resume"] <= max(3 * result["noise_before"], 5e-3), result
    return result


@pytest.fixture(scope="module")
def model_8b(tmp_path_factory):
    return build_llama_shape("llama-3.1-8b", str(tmp_path_factory.mktemp("llama-3.1-8b")))


def test_8b_qlora_killed_after_its_checkpoint_resumes_on_unsloth_with_the_same_curve(model_8b, workdir, data_dir):
    kill_and_resume(model_8b, workdir, data_dir, "resume-8b")


def test_8b_qlora_with_bitsandbytes_8bit_adamw_resumes_with_the_same_curve(model_8b, workdir, data_dir):
    # The 8B shape's LoRA matrices (16 x 4096 and up) are above bitsandbytes' 4,096-element floor for 8-bit state.
    result = kill_and_resume(model_8b, workdir, data_dir, "resume-8b-bnb", "--optimizer", "adamw_8bit")
    assert result["optimizer_class"].startswith("bitsandbytes."), result["optimizer_class"]
