"""FP8 matmuls (fp8=True), table-tested and run: the plan names the decoder's linear layers that run in FP8, or
refuses in one sentence that says why; the job swaps exactly those for torchao's Float8Linear and trains."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from autotrain_unsloth.memory import ModelShape
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import PlanError, decide
from tests.test_plan import CPU, FULL, GPU_UNSLOTH, LORA
from tests.test_plan_fit import SHAPES

SHAPE_8B = ModelShape.from_config({"model_type": "llama", **SHAPES["8b"]}).to_dict()
H100 = dataclasses.replace(GPU_UNSLOTH, gpu_capability="9.0", gpu_memory_gib=79.19, host_memory_gib=120,
                           torchao_version="0.18.0", model_shape=SHAPE_8B)
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def settings_for(**settings) -> LLMTrainingParams:
    return LLMTrainingParams(model="m", data_path="d", project_name="p", trainer="sft", unsloth=True,
                             mixed_precision="bf16", **settings)


def test_fp8_names_every_projection_of_every_decoder_layer_and_says_so():
    plan = decide(settings_for(fp8=True, **FULL), H100)
    assert plan.fp8_linears == PROJECTIONS
    said = next(reason for reason in plan.reasons if reason.startswith("FP8 matmuls"))
    assert "in each of the 32 decoder layers (224 linear layers)" in said and "output layer" in said
    assert "FP8 matmuls in q_proj" in plan.update
    assert "FP8 matmuls" in plan.render()
    # off unless asked, without a word
    plain = decide(settings_for(**FULL), H100)
    assert plain.fp8_linears is None and not any("FP8" in line for line in plain.reasons + plain.warnings)


def test_projections_whose_sides_fp8_cannot_take_stay_16bit_and_the_plan_says_which():
    odd = dict(SHAPE_8B, intermediate=14344)  # 14344 is not a multiple of 16: the MLP's three stay 16-bit
    plan = decide(settings_for(fp8=True, **FULL), dataclasses.replace(H100, model_shape=odd))
    assert plan.fp8_linears == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert any("gate_proj, up_proj, down_proj stay 16-bit too" in reason for reason in plan.reasons)


@pytest.mark.parametrize("settings, env, why", [
    (dict(fp8=True, **LORA), H100, "it is for full fine-tuning"),
    (dict(fp8=True, **FULL), CPU, "there is no CUDA GPU"),
    (dict(fp8=True, **FULL), dataclasses.replace(H100, gpu_name="A100", gpu_capability="8.0"),
     "the A100 (compute capability 8.0) has no FP8 tensor cores"),
    (dict(fp8=True, **FULL), dataclasses.replace(H100, torchao_version=None), "torchao is not installed"),
    (dict(fp8=True, **FULL), dataclasses.replace(H100, model_type="gpt_neox"), "model_type 'gpt_neox' is not one"),
    (dict(fp8=True, **FULL), dataclasses.replace(H100, model_shape=None), "config.json does not give the model's shape"),
])
def test_fp8_where_it_cannot_run_is_refused_with_the_reason(settings, env, why):
    with pytest.raises(PlanError, match="fp8=True: ") as raised:
        decide(settings_for(**settings), env)
    assert why in str(raised.value)


def test_the_job_swaps_exactly_the_planned_layers_and_the_model_trains(tmp_path, models, texts):
    """On the CPU (torch's own FP8 matmul): the swap, its record in plan.json, a few optimizer steps that lower the
    loss, and weights saved under their usual names."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from autotrain_unsloth.trainers.float8 import convert_to_float8, float8_linear_count

    with open(os.path.join(models["llama"], "config.json")) as f:
        shape = ModelShape.from_config(json.load(f)).to_dict()
    plan = decide(settings_for(fp8=True, **FULL), dataclasses.replace(H100, model_shape=shape))
    project = str(tmp_path / "p")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(models["llama"], dtype=torch.bfloat16)
    names_before = sorted(model.state_dict())
    plan = convert_to_float8(model, plan, project)
    assert float8_linear_count(model) == 7 * shape["layers"] == plan.verified["fp8_linears"]
    assert type(model.get_output_embeddings()).__name__ == "Linear"
    with open(os.path.join(project, "plan.json")) as f:
        assert json.load(f)["verified"]["fp8_linears"] == 7 * shape["layers"]
    tokenizer = AutoTokenizer.from_pretrained(models["llama"])
    # 45 tokens a row: the weight gradient's inner side is not a multiple of 16, which the padding takes care of
    batch = tokenizer(texts[:2], truncation=True, max_length=45, padding="max_length", return_tensors="pt")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert sorted(model.state_dict()) == names_before


def test_a_swap_that_differs_from_the_plan_stops_the_job(tmp_path, models):
    import torch
    from transformers import AutoModelForCausalLM

    from autotrain_unsloth.trainers.float8 import convert_to_float8
    from autotrain_unsloth.verify import PlanMismatch

    with open(os.path.join(models["llama"], "config.json")) as f:
        shape = ModelShape.from_config(json.load(f)).to_dict()
    plan = decide(settings_for(fp8=True, **FULL), dataclasses.replace(H100, model_shape={**shape, "layers": 5}))
    model = AutoModelForCausalLM.from_pretrained(models["llama"], dtype=torch.bfloat16)
    with pytest.raises(PlanMismatch, match=r"planned for 35 linear layers .* but 14 were swapped"):
        convert_to_float8(model, plan, str(tmp_path / "p"))
