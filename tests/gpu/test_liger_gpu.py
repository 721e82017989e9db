"""Liger's kernels on the transformers path, on a CUDA GPU with liger-kernel installed: planned on by default for
LoRA sft on a Llama, the Trainer patches the model's modules (counted at the first step, `verified.liger_modules`),
and the loss curve equals the same run's with --no-use-liger-kernel within bf16 rounding (curves in
liger-curves.json)."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from tests.gpu.test_unsloth_gpu import common_flags, losses, run_cli

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is None, reason="needs liger-kernel installed"),
]


def test_liger_runs_where_installed_and_trains_like_without_it(tiny_models, workdir, data_dir):
    curves, plans = {}, {}
    for project, extra in (("liger-on", []), ("liger-off", ["--no-use-liger-kernel"])):
        run_cli(workdir, *common_flags(tiny_models["llama"], data_dir, project), "--peft", "--quantization", "none",
                "--lora-dropout", "0", "--lr", "5e-3", "--mixed-precision", "bf16", *extra)
        with open(os.path.join(workdir, project, "plan.json")) as f:
            plans[project] = json.load(f)
        curves[project] = losses(os.path.join(workdir, project))
    with open(os.path.join(workdir, "liger-curves.json"), "w") as f:
        json.dump(curves, f)
    on, off = plans["liger-on"], plans["liger-off"]
    assert on["backend"] == "transformers" and on["liger"] is True, on["reasons"]
    assert on["verified"]["liger_modules"] > 0  # RMSNorms and MLPs of the 2 layers, and the final norm
    assert off["liger"] is False and off["verified"]["liger_modules"] == 0
    relative = [abs(a - b) / b for a, b in zip(curves["liger-on"], curves["liger-off"])]
    # The same weights, data and LoRA init; only the kernels' bf16 rounding differs. A wrong norm, activation or
    # loss moves the curve by far more than 2% within a few steps.
    assert len(curves["liger-on"]) == len(curves["liger-off"]) and max(relative) < 2e-2, relative
