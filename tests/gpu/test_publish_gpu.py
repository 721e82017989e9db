"""Publishing on a CUDA GPU: a QLoRA run of a Llama-3.2-1B-shaped model on Unsloth's path exports a merged 16-bit
copy and a GGUF q8_0 file. The merged model's loss on 20 training rows equals base + adapter's within 1%; the
GGUF file reads back equal to the merged weights within q8_0's rounding, with its vocabulary. The four losses
(merged, 16-bit base + adapter, the 4-bit base + adapter it trained as, the base alone) go to publish-losses.json."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from autotrain_unsloth.demo import bundled_texts
from tests.gpu.conftest import build_llama_shape
from tests.gpu.test_unsloth_gpu import run_cli

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(importlib.util.find_spec("unsloth") is None, reason="needs unsloth installed"),
    pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="needs gguf installed"),
]


@pytest.fixture(scope="module")
def model_1b(tmp_path_factory):
    return build_llama_shape("llama-3.2-1b", str(tmp_path_factory.mktemp("llama-3.2-1b")))


@torch.no_grad()
def mean_loss(model, tokenizer, texts) -> float:
    total = 0.0
    for text in texts:
        ids = tokenizer(text, return_tensors="pt").input_ids.to("cuda")
        total += model(input_ids=ids, labels=ids).loss.item()
    return total / len(texts)


def losses_of_each_form(base_dir: str, project_dir: str, texts) -> dict[str, float]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    tokenizer = AutoTokenizer.from_pretrained(project_dir)
    four_bit = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.bfloat16)
    loaders = {
        "merged": lambda: AutoModelForCausalLM.from_pretrained(os.path.join(project_dir, "merged"), dtype=torch.bfloat16),
        "base_16bit_with_adapter": lambda: PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.bfloat16), project_dir),
        "base_4bit_with_adapter": lambda: PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(
            base_dir, quantization_config=four_bit, dtype=torch.bfloat16, device_map={"": 0}), project_dir),
        "base": lambda: AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.bfloat16),
    }
    losses = {}
    for name, load in loaders.items():
        model = load().to("cuda").eval() if name != "base_4bit_with_adapter" else load().eval()
        losses[name] = mean_loss(model, tokenizer, texts)
        del model
        torch.cuda.empty_cache()
    return losses


def test_1b_qlora_exports_merged_16bit_and_gguf_q8_0_matching_base_plus_adapter(model_1b, workdir, data_dir):
    from tests.test_gguf import assert_equal_to_model

    project = "publish-1b"
    result = run_cli(workdir, "--train", "--model", model_1b, "--data-path", data_dir, "--project-name", project,
                     "--trainer", "sft", "--unsloth", "--peft", "--quantization", "int4", "--lora-dropout", "0",
                     "--lr", "1e-3", "--max-steps", "40", "--batch-size", "2", "--gradient-accumulation", "1",
                     "--block-size", "256", "--logging-steps", "1", "--warmup-ratio", "0", "--seed", "7",
                     "--merged-copy", "--export-gguf", "q8_0")
    project_dir = os.path.join(workdir, project)
    with open(os.path.join(project_dir, "plan.json")) as f:
        plan = json.load(f)
    assert (plan["backend"], plan["method"]) == ("unsloth", "qlora-4bit"), plan["reasons"]
    assert "GGUF written" in result.stdout

    losses = losses_of_each_form(model_1b, project_dir, bundled_texts()[:20])
    with open(os.path.join(workdir, "publish-losses.json"), "w") as f:
        json.dump(losses, f, indent=1)
    reference = losses["base_16bit_with_adapter"]
    assert abs(losses["merged"] - reference) <= 0.01 * reference, losses
    # The adapter changed the model by far more than the merge's rounding: the check above can fail.
    assert abs(losses["base"] - reference) > 0.1 * reference, losses

    assert_equal_to_model(os.path.join(project_dir, f"{project}-q8_0.gguf"), os.path.join(project_dir, "merged"), "q8_0")
