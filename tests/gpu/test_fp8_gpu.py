"""FP8 matmuls (fp8=True) on a GPU with FP8 tensor cores: a full fine-tune through the CLI on Unsloth's path and on
the transformers path swaps every planned projection for torchao's Float8Linear, trains (the loss falls) and saves
a model that loads back as a plain transformers model."""

from __future__ import annotations

import json
import os

import pytest

from tests.gpu.test_unsloth_gpu import common_flags, losses, run_cli

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.get_device_capability(0) < (8, 9),
                       reason="needs FP8 tensor cores (compute capability 8.9 or later)"),
]


@pytest.mark.parametrize("backend", ["unsloth", "transformers"])
def test_full_finetuning_with_fp8_matmuls_trains_and_saves(tiny_models, workdir, data_dir, backend):
    from transformers import AutoModelForCausalLM

    project = f"fp8-{backend}"
    run_cli(workdir, *common_flags(tiny_models["llama"], data_dir, project), "--full-finetuning", "--quantization",
            "none", "--mixed-precision", "bf16", "--lr", "2e-3", "--fp8",
            *(["--unsloth"] if backend == "unsloth" else []))
    with open(os.path.join(workdir, project, "plan.json")) as f:
        plan = json.load(f)
    layers = plan["environment"]["model_shape"]["layers"]
    assert plan["backend"] == backend and len(plan["fp8_linears"]) == 7
    assert plan["verified"]["fp8_linears"] == 7 * layers
    curve = losses(os.path.join(workdir, project))
    assert curve[-1] < curve[0]
    saved = AutoModelForCausalLM.from_pretrained(os.path.join(workdir, project), dtype="auto")
    assert not any(type(module).__name__ == "Float8Linear" for module in saved.modules())
