"""The decision, table-tested: (params, environment) -> plan, over the whole matrix."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import Environment, Plan, PlanError, decide, read_model_config

CPU = Environment(model_type="llama")
CPU_UNSLOTH = dataclasses.replace(CPU, unsloth_version="2026.10.8")
GPU = Environment(cuda=True, bf16=True, gpu_count=1, gpu_name="H100", bitsandbytes_installed=True, model_type="llama")
GPU_UNSLOTH = dataclasses.replace(GPU, unsloth_version="2026.10.8")
GPU_UNSLOTH_NO_BF16 = dataclasses.replace(GPU_UNSLOTH, bf16=False, gpu_name="T4")

LORA = dict(peft=True, quantization=None)
QLORA = dict(peft=True, quantization="int4")
INT8 = dict(peft=True, quantization="int8")
FULL = dict(full_finetuning=True, quantization=None)

# (params, environment) -> (backend, method, weights dtype, autocast, packing)
MATRIX = [
    # Unsloth asked and possible: every method
    (dict(unsloth=True, trainer="sft", **FULL), GPU_UNSLOTH, ("unsloth", "full", "bf16", "no", True)),
    (dict(unsloth=True, trainer="sft", **LORA), GPU_UNSLOTH, ("unsloth", "lora", "bf16", "bf16", True)),
    (dict(unsloth=True, trainer="sft", **QLORA), GPU_UNSLOTH, ("unsloth", "qlora-4bit", "bf16", "bf16", True)),
    (dict(unsloth=True, trainer="sft", **INT8), GPU_UNSLOTH, ("unsloth", "lora-8bit", "bf16", "bf16", True)),
    (dict(unsloth=True, trainer="default", **QLORA), GPU_UNSLOTH, ("unsloth", "qlora-4bit", "bf16", "bf16", False)),
    (dict(unsloth=True, trainer="sft", mixed_precision="fp16", **FULL), GPU_UNSLOTH, ("unsloth", "full", "fp32", "fp16", True)),
    (dict(unsloth=True, trainer="sft", **LORA), GPU_UNSLOTH_NO_BF16, ("unsloth", "lora", "fp16", "fp16", True)),
    # peft=False is full fine-tuning too (AutoTrain's meaning), with Unsloth's full_finetuning=True
    (dict(unsloth=True, peft=False), GPU_UNSLOTH, ("unsloth", "full", "bf16", "no", False)),
    # Unsloth asked, not possible: transformers
    (dict(unsloth=True, trainer="sft", **QLORA), GPU, ("transformers", "qlora-4bit", "fp32", "no", True)),
    # on a CPU packing is off unless asked (plan/cpu.py)
    (dict(unsloth=True, trainer="sft", **QLORA), CPU_UNSLOTH, ("transformers", "lora", "fp32", "no", False)),
    (dict(unsloth=True, trainer="sft", **FULL), CPU, ("transformers", "full", "fp32", "no", False)),
    (
        dict(unsloth=True, **LORA),
        dataclasses.replace(GPU_UNSLOTH, model_type="phi3"),
        ("transformers", "lora", "fp32", "no", False),
    ),
    # Unsloth not asked
    (dict(trainer="sft", mixed_precision="bf16", **LORA), GPU_UNSLOTH, ("transformers", "lora", "bf16", "bf16", True)),
    (dict(trainer="sft", packing=False, **LORA), GPU_UNSLOTH, ("transformers", "lora", "fp32", "no", False)),
    (dict(trainer="sft", **LORA), dataclasses.replace(CPU, model_type="falcon"), ("transformers", "lora", "fp32", "no", False)),
    (
        dict(trainer="sft", mixed_precision="bf16", use_flash_attention_2=True, **LORA),
        GPU,
        ("transformers", "lora", "bf16", "bf16", True),
    ),
    (dict(mixed_precision="fp16", **FULL), GPU, ("transformers", "full", "fp32", "fp16", False)),
    (dict(mixed_precision="bf16", **INT8), GPU, ("transformers", "lora-8bit", "bf16", "bf16", False)),
    (dict(mixed_precision="bf16", **QLORA), CPU, ("transformers", "lora", "fp32", "no", False)),
    (dict(mixed_precision="bf16", **LORA), dataclasses.replace(GPU, bf16=False), ("transformers", "lora", "fp16", "fp16", False)),
]


VARLEN_211 = dict(torch_varlen="no-gqa")
# (params, environment) -> the attention packed rows run with
PACKED_ATTENTION = [
    (dict(unsloth=True, trainer="sft", **QLORA), dataclasses.replace(GPU_UNSLOTH, **VARLEN_211), "torch-varlen-in-unsloth"),
    (
        dict(unsloth=True, trainer="sft", packing=False, **QLORA),
        dataclasses.replace(GPU_UNSLOTH, **VARLEN_211),
        "torch-varlen-in-unsloth",
    ),  # Unsloth lays batches out padding-free even without packing
    # Full fine-tuning and 8-bit LoRA load through Unsloth's FastModel: transformers' attention interface
    (dict(unsloth=True, trainer="sft", **FULL), dataclasses.replace(GPU_UNSLOTH, **VARLEN_211), "torch-varlen"),
    (dict(unsloth=True, trainer="sft", **FULL), dataclasses.replace(GPU_UNSLOTH, torch_varlen="gqa"), "torch-varlen"),
    (dict(unsloth=True, trainer="sft", **INT8), dataclasses.replace(GPU_UNSLOTH, **VARLEN_211), "torch-varlen"),
    (
        dict(unsloth=True, trainer="sft", auto_packed_attention=False, **FULL),
        dataclasses.replace(GPU_UNSLOTH, **VARLEN_211),
        "sdpa-mask",
    ),
    (
        dict(unsloth=True, trainer="sft", **FULL),
        dataclasses.replace(GPU_UNSLOTH, flash_attn_installed=True, **VARLEN_211),
        "unsloth",
    ),
    (dict(unsloth=True, trainer="sft", **FULL), GPU_UNSLOTH, "sdpa-mask"),  # no varlen_attn in this torch
    (dict(unsloth=True, trainer="sft", **QLORA), dataclasses.replace(GPU_UNSLOTH, torch_varlen="gqa"), "unsloth"),
    (
        dict(unsloth=True, trainer="sft", **QLORA),
        dataclasses.replace(GPU_UNSLOTH, flash_attn_installed=True, **VARLEN_211),
        "unsloth",
    ),
    (dict(unsloth=True, trainer="sft", **QLORA), GPU_UNSLOTH, "sdpa-no-cudnn"),
    (dict(unsloth=True, trainer="default", **QLORA), dataclasses.replace(GPU_UNSLOTH, **VARLEN_211), None),
    (dict(trainer="sft", mixed_precision="bf16", **QLORA), dataclasses.replace(GPU, **VARLEN_211), "torch-varlen"),
    (
        dict(trainer="sft", mixed_precision="bf16", auto_packed_attention=False, **QLORA),
        dataclasses.replace(GPU, **VARLEN_211),
        "sdpa-mask",
    ),
    (dict(trainer="sft", **QLORA), dataclasses.replace(GPU, **VARLEN_211), "sdpa-mask"),  # fp32: the kernel takes 16-bit
    (dict(trainer="sft", mixed_precision="bf16", **QLORA), GPU, "sdpa-mask"),  # no varlen_attn in this torch
    (dict(trainer="sft", packing=True, **LORA), dataclasses.replace(CPU, **VARLEN_211), "sdpa-mask"),
    (dict(trainer="sft", mixed_precision="bf16", use_flash_attention_2=True, **LORA), GPU, "flash_attention_2"),
    (dict(trainer="sft", packing=False, **LORA), dataclasses.replace(GPU, **VARLEN_211), None),
]


@pytest.mark.parametrize("settings, env, expected", PACKED_ATTENTION)
def test_packed_attention_choice(settings, env, expected):
    plan = decide(LLMTrainingParams(**settings), env)
    assert plan.packed_attention == expected, plan.render()
    if expected:
        assert any(reason.startswith("packed attention:") for reason in plan.reasons)
        assert "packed attention  " in plan.render()


def test_packing_asked_for_an_unknown_architecture_is_refused():
    with pytest.raises(PlanError, match="packing=True: model_type 'falcon'"):
        decide(LLMTrainingParams(trainer="sft", packing=True, **LORA), dataclasses.replace(CPU, model_type="falcon"))


@pytest.mark.parametrize("settings, env, expected", MATRIX)
def test_decision_matrix(settings, env, expected):
    plan = decide(LLMTrainingParams(**settings), env)
    assert (plan.backend, plan.method, plan.weights_dtype, plan.autocast, plan.packing) == expected, plan.render()
    assert plan.reasons


def test_every_fallback_reason_is_named():
    plan = decide(LLMTrainingParams(unsloth=True, **LORA), Environment(model_type="gpt2"))
    [warning] = [w for w in plan.warnings if w.startswith("Unsloth was asked for")]
    assert "unsloth is not installed" in warning
    assert "no CUDA GPU" in warning
    assert "model_type 'gpt2' is not on Unsloth's fast path" in warning


@pytest.mark.parametrize(
    "env, reason",
    [
        (GPU, "unsloth is not installed"),
        (CPU_UNSLOTH, "no CUDA GPU was found"),
        (dataclasses.replace(GPU_UNSLOTH, model_type="gpt2"), "model_type 'gpt2'"),
        (
            dataclasses.replace(GPU_UNSLOTH, unsloth_load_error="ValueError: boom"),
            "Unsloth failed to load the model (ValueError: boom)",
        ),
    ],
)
def test_each_fallback_has_its_own_reason(env, reason):
    plan = decide(LLMTrainingParams(unsloth=True, **LORA), env)
    assert plan.backend == "transformers"
    [warning] = [w for w in plan.warnings if w.startswith("Unsloth was asked for")]
    blockers = warning.split(": ", 1)[1].split(". Training with")[0]
    assert reason in blockers and "; " not in blockers  # this reason, and only this one


def test_no_unsloth_warning_when_not_asked():
    plan = decide(LLMTrainingParams(**LORA), CPU)
    assert not any("Unsloth" in warning for warning in plan.warnings)
    assert "unsloth not asked" in plan.reasons[0]


def test_quantization_without_gpu_warns_and_trains_unquantized():
    plan = decide(LLMTrainingParams(**QLORA), CPU)
    assert plan.method == "lora"
    assert any("quantization='int4' needs a CUDA GPU" in warning for warning in plan.warnings)


def test_quantization_without_bitsandbytes_is_an_error():
    with pytest.raises(PlanError, match="needs bitsandbytes"):
        decide(LLMTrainingParams(**QLORA), dataclasses.replace(GPU, bitsandbytes_installed=False))


def test_all_linear_is_spelled_out_per_architecture():
    assert decide(LLMTrainingParams(**LORA), CPU).lora_target_modules == (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )
    assert decide(LLMTrainingParams(**LORA), Environment(model_type="gpt2")).lora_target_modules == ("c_attn", "c_proj", "c_fc")
    assert decide(LLMTrainingParams(**LORA), Environment(model_type="olmo2")).lora_target_modules == ("all-linear",)
    assert decide(LLMTrainingParams(target_modules="q_proj, v_proj", **LORA), CPU).lora_target_modules == ("q_proj", "v_proj")
    assert decide(LLMTrainingParams(**FULL), CPU).lora_target_modules is None


def test_gradient_checkpointing_kinds():
    assert decide(LLMTrainingParams(unsloth=True, **LORA), GPU_UNSLOTH).gradient_checkpointing == "unsloth"
    assert decide(LLMTrainingParams(**LORA), GPU).gradient_checkpointing == "on"
    assert (
        decide(LLMTrainingParams(disable_gradient_checkpointing=True, unsloth=True, **LORA), GPU_UNSLOTH).gradient_checkpointing
        == "off"
    )


def test_devices_and_processes():
    assert (decide(LLMTrainingParams(**LORA), CPU).device, decide(LLMTrainingParams(**LORA), CPU).num_processes) == ("cpu", 0)
    four = dataclasses.replace(GPU_UNSLOTH, gpu_count=4)
    plan = decide(LLMTrainingParams(unsloth=True, batch_size=2, gradient_accumulation=4, **LORA), four)
    # Unsloth trains under DDP too: one process per visible GPU, the global batch said
    assert (plan.backend, plan.num_processes) == ("unsloth", 4)
    assert any("DDP, one process per visible GPU" in r and "global batch 2 x 4 x 4 = 32" in r for r in plan.reasons)
    assert "cuda x4 (H100) (DDP)" in plan.render()
    assert decide(LLMTrainingParams(**LORA), four).num_processes == 4


def test_deepspeed_is_planned_or_refused_before_anything_runs():
    from autotrain_unsloth.project import launch_command

    two = dataclasses.replace(GPU, gpu_count=2, deepspeed_installed=True)
    params = LLMTrainingParams(full_finetuning=True, quantization=None, mixed_precision="bf16",
                               distributed_backend="deepspeed", project_name="ds")
    plan = decide(params, two)
    assert plan.num_processes == 2 and "(DeepSpeed ZeRO-3)" in plan.render()
    command = launch_command(params, plan)
    assert "--use_deepspeed" in command and command[command.index("--mixed_precision") + 1] == "bf16"
    with pytest.raises(PlanError, match="needs deepspeed, which is not installed"):
        decide(params, dataclasses.replace(two, deepspeed_installed=False))
    with pytest.raises(PlanError, match="not supported on the Unsloth path"):
        decide(params.model_copy(update={"unsloth": True}), dataclasses.replace(two, unsloth_version="2026.10.8"))


def test_launch_command_for_each_plan():
    from autotrain_unsloth.project import launch_command

    params = LLMTrainingParams(peft=True, quantization=None, project_name="p")
    for env, expected in ((CPU, ["--cpu", "--num_machines", "1", "--num_processes", "1"]),
                          (GPU, ["--num_machines", "1", "--num_processes", "1"]),
                          (dataclasses.replace(GPU, gpu_count=2),
                           ["--multi_gpu", "--num_machines", "1", "--num_processes", "2"])):
        command = launch_command(params, decide(params, env))
        assert command[3:3 + len(expected)] == expected, command
        assert command[command.index("--mixed_precision") + 1] == "no"  # the Trainer sets autocast from the plan
        assert command[-3:] == ["autotrain_unsloth.trainers.clm", "--training_config", "p/training_params.json"]


def test_unsloth_lora_dropout_costs_speed_and_says_so():
    plan = decide(LLMTrainingParams(unsloth=True, peft=True, lora_dropout=0.05), GPU_UNSLOTH)
    assert any("lora_dropout=0.05" in warning for warning in plan.warnings)


def test_settings_the_job_will_not_honour_are_said():
    plan = decide(
        LLMTrainingParams(
            unsloth=True, use_flash_attention_2=True, push_to_hub=True, username="me", token="hf_plan_secret", **LORA
        ),
        dataclasses.replace(GPU_UNSLOTH, hub_token_found=True),
    )
    assert any("use_flash_attention_2 not used on the Unsloth path" in warning for warning in plan.warnings)
    assert any("push_to_hub: after training, project-name/ is uploaded to me/project-name (private" in reason
               for reason in plan.reasons)
    assert "hf_plan_secret" not in json.dumps(plan.to_dict())
    with pytest.raises(PlanError, match="push_to_hub=True: no Hub token"):
        decide(LLMTrainingParams(push_to_hub=True, username="me"), GPU_UNSLOTH)


def test_decide_is_pure_and_round_trips():
    params, env = LLMTrainingParams(unsloth=True, **QLORA), GPU_UNSLOTH
    first, second = decide(params, env), decide(params, env)
    assert first == second
    assert Plan.from_dict(first.to_dict()) == first


def test_render_shows_asked_will_run_and_why():
    text = decide(LLMTrainingParams(unsloth=True, trainer="sft", **QLORA), CPU).render()
    assert "asked" in text and "will run" in text and "Why:" in text and "Warnings:" in text
    assert re.search(r"backend\s+unsloth\s+transformers", text)
    assert re.search(r"method\s+LoRA r=16 \+ int4\s+LoRA r=16 \(16-bit base\)", text)


def test_read_model_config(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"}')
    assert read_model_config(str(tmp_path))["model_type"] == "qwen2"
    with pytest.raises(PlanError, match="no config.json"):
        read_model_config(str(tmp_path.parent))
    with pytest.raises(PlanError, match="is not a folder"):
        read_model_config(str(tmp_path / "missing"))
