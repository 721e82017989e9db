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
    (dict(unsloth=True, trainer="sft", **QLORA), CPU_UNSLOTH, ("transformers", "lora", "fp32", "no", True)),
    (dict(unsloth=True, trainer="sft", **FULL), CPU, ("transformers", "full", "fp32", "no", True)),
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
    (
        dict(unsloth=True, trainer="sft", auto_packed_attention=False, **FULL),
        dataclasses.replace(GPU_UNSLOTH, **VARLEN_211),
        "unsloth",
    ),
    (dict(unsloth=True, trainer="sft", **FULL), dataclasses.replace(GPU_UNSLOTH, torch_varlen="gqa"), "unsloth"),
    (
        dict(unsloth=True, trainer="sft", **FULL),
        dataclasses.replace(GPU_UNSLOTH, flash_attn_installed=True, **VARLEN_211),
        "unsloth",
    ),
    (dict(unsloth=True, trainer="sft", **FULL), GPU_UNSLOTH, "sdpa-no-cudnn"),
    (dict(unsloth=True, trainer="default", **QLORA), dataclasses.replace(GPU_UNSLOTH, **VARLEN_211), None),
    (dict(trainer="sft", mixed_precision="bf16", **QLORA), dataclasses.replace(GPU, **VARLEN_211), "torch-varlen"),
    (
        dict(trainer="sft", mixed_precision="bf16", auto_packed_attention=False, **QLORA),
        dataclasses.replace(GPU, **VARLEN_211),
        "sdpa-mask",
    ),
    (dict(trainer="sft", **QLORA), dataclasses.replace(GPU, **VARLEN_211), "sdpa-mask"),  # fp32: the kernel takes 16-bit
    (dict(trainer="sft", mixed_precision="bf16", **QLORA), GPU, "sdpa-mask"),  # no varlen_attn in this torch
    (dict(trainer="sft", **LORA), dataclasses.replace(CPU, **VARLEN_211), "sdpa-mask"),
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


# -- automatic gradient checkpointing -----------------------------------------------------------------


def _llama_8b_shape() -> dict:
    import os
    import sys

    from autotrain_unsloth.memory import ModelShape
    from tests.conftest import REPO

    sys.path.insert(0, os.path.join(REPO, "bench"))
    from workload import SHAPES

    return ModelShape.from_config({"model_type": "llama", **SHAPES["llama-3.1-8b"]}).to_dict()


H100 = dataclasses.replace(GPU_UNSLOTH, gpu_memory_gib=79.19, model_shape=_llama_8b_shape())
BENCH = dict(trainer="sft", batch_size=2, block_size=2048, optimizer="adamw_8bit", lora_dropout=0.0)


@pytest.mark.parametrize(
    "settings, env, expected, why",
    [
        # 8B full fine-tuning, 2 x 2048: estimated 57.3 GiB without checkpointing, budget 85% of 79.2 GiB
        (dict(unsloth=True, **FULL, **BENCH), H100, "off", "gradient checkpointing off (automatic"),
        (dict(unsloth=True, **QLORA, **BENCH), H100, "off", "gradient checkpointing off (automatic"),
        (dict(**LORA, mixed_precision="bf16", **BENCH), dataclasses.replace(H100, unsloth_version=None), "off", "(automatic"),
        # 8 x 2048 does not fit: Unsloth's offloading checkpointing, or transformers'
        (dict(unsloth=True, **FULL, **{**BENCH, "batch_size": 8}), H100, "unsloth", "does not fit"),
        (dict(**FULL, mixed_precision="bf16", **{**BENCH, "batch_size": 8}), H100, "on", "does not fit"),
        (dict(unsloth=True, **FULL, **BENCH), dataclasses.replace(H100, gpu_memory_gib=23.5), "unsloth", "does not fit"),
        # switched off, forced off, after an out-of-memory, or nothing to size against
        (
            dict(unsloth=True, auto_gradient_checkpointing=False, **FULL, **BENCH),
            H100,
            "unsloth",
            "auto_gradient_checkpointing=False",
        ),
        (
            dict(unsloth=True, disable_gradient_checkpointing=True, **FULL, **BENCH),
            H100,
            "off",
            "disable_gradient_checkpointing=True",
        ),
        (
            dict(unsloth=True, **FULL, **BENCH),
            dataclasses.replace(H100, out_of_memory_without_checkpointing=True),
            "unsloth",
            "ran out of GPU memory",
        ),
        (dict(unsloth=True, **FULL, **BENCH), dataclasses.replace(H100, model_shape=None), "unsloth", "could not be read"),
        (dict(unsloth=True, **FULL, **BENCH), dataclasses.replace(H100, gpu_memory_gib=None), "unsloth", "memory is unknown"),
        (dict(**LORA, **BENCH), CPU, "on", "no CUDA GPU"),
    ],
)
def test_automatic_gradient_checkpointing(settings, env, expected, why):
    plan = decide(LLMTrainingParams(**settings), env)
    assert plan.gradient_checkpointing == expected
    reason = next(r for r in plan.reasons if r.startswith("gradient checkpointing"))
    assert why in reason, reason
    if "fit" in why or "automatic" in why:
        estimate = plan.memory_estimate_gib
        assert estimate["budget"] == round(0.85 * env.gpu_memory_gib, 2)
        assert (estimate["total"] <= estimate["budget"]) == (expected == "off")
        assert f"{estimate['total']} GiB" in reason
    else:
        assert plan.memory_estimate_gib is None


def test_automatic_checkpointing_is_shown_in_the_plan_table():
    plan = decide(LLMTrainingParams(unsloth=True, **FULL, **BENCH), H100)
    row = next(line for line in plan.render().splitlines() if "grad. checkpointing" in line)
    assert "auto" in row and "off" in row and f"estimated peak {plan.memory_estimate_gib['total']} GiB" in row
    assert "--no-auto-gradient-checkpointing" in plan.render()


def test_probe_reads_the_model_shape(models):
    from autotrain_unsloth.plan import probe

    env = probe(LLMTrainingParams(model=models["llama"]))
    assert env.model_shape["hidden"] == 64 and env.model_shape["layers"] == 2
    assert probe(LLMTrainingParams(model=models["gpt2"])).model_shape is None


# -- automatic optimizer ------------------------------------------------------------------------------

H100_TORCHAO = dataclasses.replace(H100, torchao_version="0.18.0")


@pytest.mark.parametrize(
    "settings, env, expected, why",
    [
        # full fine-tuning's adamw_8bit runs as torchao's AdamW8bit on a GPU
        (dict(unsloth=True, **FULL, **BENCH), H100_TORCHAO, "adamw_torch_8bit", "runs as torchao's AdamW8bit"),
        (
            dict(**FULL, mixed_precision="bf16", **BENCH),
            dataclasses.replace(H100_TORCHAO, unsloth_version=None),
            "adamw_torch_8bit",
            "--no-auto-optimizer",
        ),
        (
            dict(unsloth=True, **FULL, **BENCH),
            dataclasses.replace(H100, torchao_version="0.11.0+cu130"),
            "adamw_torch_8bit",
            "automatic",
        ),
        # kept: switched off, LoRA, another optimizer, no GPU, DeepSpeed, torchao missing or too old
        (dict(unsloth=True, auto_optimizer=False, **FULL, **BENCH), H100_TORCHAO, "adamw_8bit", "auto_optimizer=False"),
        (dict(unsloth=True, **LORA, **BENCH), H100_TORCHAO, "adamw_8bit", "LoRA trains few weights"),
        (dict(unsloth=True, **QLORA, **BENCH), H100_TORCHAO, "adamw_8bit", "LoRA trains few weights"),
        (dict(unsloth=True, **FULL, **{**BENCH, "optimizer": "adamw_torch"}), H100_TORCHAO, "adamw_torch", "as asked"),
        (dict(**FULL, **BENCH), dataclasses.replace(CPU, torchao_version="0.18.0"), "adamw_torch",
         "needs bitsandbytes on a CUDA GPU"),
        (
            dict(**FULL, mixed_precision="bf16", distributed_backend="deepspeed", **BENCH),
            dataclasses.replace(H100_TORCHAO, unsloth_version=None, gpu_count=2, deepspeed_installed=True),
            "adamw_8bit",
            "DeepSpeed",
        ),
        (dict(unsloth=True, **FULL, **BENCH), H100, "adamw_8bit", "torchao is not installed"),
        (
            dict(unsloth=True, **FULL, **BENCH),
            dataclasses.replace(H100, torchao_version="0.10.0"),
            "adamw_8bit",
            "older than 0.11",
        ),
    ],
)
def test_automatic_optimizer(settings, env, expected, why):
    plan = decide(LLMTrainingParams(**settings), env)
    assert plan.optimizer == expected
    reason = next(r for r in plan.reasons if r.startswith("optimizer"))
    assert why in reason, reason
    row = next(line for line in plan.render().splitlines() if line.strip().startswith("optimizer"))
    assert row.split()[1:] == [settings.get("optimizer", BENCH["optimizer"]), expected]


def test_training_arguments_follow_the_planned_optimizer():
    from autotrain_unsloth.trainers.arguments import training_arguments

    params = LLMTrainingParams(unsloth=True, **FULL, **BENCH)
    assert training_arguments(params, decide(params, H100_TORCHAO), rows=10)["optim"] == "adamw_torch_8bit"
    assert training_arguments(params, decide(params, H100), rows=10)["optim"] == "adamw_8bit"


def test_fallback_after_an_unsloth_load_failure_keeps_16_bit_and_says_so():
    params = LLMTrainingParams(unsloth=True, trainer="sft", peft=True, quantization=None)
    failed = dataclasses.replace(GPU_UNSLOTH, unsloth_load_error="NotImplementedError: not supported")
    plan = decide(params, failed)
    assert (plan.backend, plan.weights_dtype, plan.autocast) == ("transformers", "bf16", "bf16")
    assert any("training stays in bf16 as Unsloth would have" in warning for warning in plan.warnings)
    # Without a failure, transformers' own default stays fp32 (AutoTrain's meaning of mixed_precision none).
    assert decide(params.model_copy(update={"unsloth": False}), GPU_UNSLOTH).weights_dtype == "fp32"


# (block_size, the tokenizer's own limit, model_max_length) -> (sequence length, a warning containing)
SEQUENCE = [
    (-1, None, 2048, 1024, None),
    (-1, 512, 2048, 512, None),
    (4096, None, 2048, 4096, "block_size=4096 is above model_max_length=2048: training at 4096"),
    (4096, 131072, 2048, 4096, "block_size=4096 is above model_max_length=2048"),
    (4096, 2048, 2048, 2048, "above the tokenizer's limit of 2048 tokens; training at 2048"),
    (1024, 131072, 2048, 1024, None),
]


@pytest.mark.parametrize("block, tokenizer_limit, model_max_length, expected, warning", SEQUENCE)
def test_the_plan_owns_the_sequence_length(block, tokenizer_limit, model_max_length, expected, warning):
    params = LLMTrainingParams(block_size=block, model_max_length=model_max_length, trainer="sft")
    plan = decide(params, dataclasses.replace(CPU, tokenizer_max_length=tokenizer_limit))
    assert plan.sequence_length == expected
    assert f"{expected}" in plan.render().split("sequence length")[1].splitlines()[0]
    found = [w for w in plan.warnings if "block_size" in w]
    assert (warning in found[0]) if warning else not found, found


def test_the_plan_owns_the_save_policy_and_names_settings_that_do_nothing():
    none = decide(LLMTrainingParams(eval_strategy="steps"), CPU)
    assert (none.eval_strategy, none.save_strategy) == ("no", "no")
    assert any("eval_strategy not used" in w for w in none.warnings)
    split = decide(LLMTrainingParams(valid_split="validation", eval_strategy="steps"), CPU)
    assert (split.eval_strategy, split.save_strategy) == ("steps", "steps")
    left = decide(LLMTrainingParams(padding="left", trainer="sft"), CPU)
    assert any("padding='left' sets the saved tokenizer's padding side only" in w for w in left.warnings)
    one_gpu = decide(LLMTrainingParams(distributed_backend="ddp"), GPU)
    assert any("distributed_backend='ddp' not used: one GPU" in w for w in one_gpu.warnings)



@pytest.mark.parametrize("optimizer", ["paged_adamw_8bit", "adamw_bnb_8bit", "adamw_8bit", "paged_lion_8bit"])
def test_a_bitsandbytes_optimizer_without_bitsandbytes_becomes_adamw_torch_with_a_warning(optimizer):
    """AutoTrain's shipped configs ask for paged_adamw_8bit / adamw_bnb_8bit; without bitsandbytes the job died."""
    for env in (CPU, dataclasses.replace(GPU, bitsandbytes_installed=False)):
        plan = decide(LLMTrainingParams(optimizer=optimizer, peft=True, quantization=None), env)
        assert plan.optimizer == "adamw_torch"
        assert any(f"optimizer={optimizer!r} needs bitsandbytes" in warning for warning in plan.warnings)
    assert decide(LLMTrainingParams(optimizer=optimizer, peft=True, quantization=None), GPU).optimizer == optimizer


def test_two_gpus_on_the_unsloth_path_launch_ddp():
    from autotrain_unsloth.project import launch_command

    params = LLMTrainingParams(unsloth=True, trainer="sft", project_name="u", **QLORA)
    plan = decide(params, dataclasses.replace(GPU_UNSLOTH, gpu_count=2))
    assert (plan.backend, plan.method, plan.num_processes) == ("unsloth", "qlora-4bit", 2)
    command = launch_command(params, plan)
    assert command[3:8] == ["--multi_gpu", "--num_machines", "1", "--num_processes", "2"]


def test_an_explicit_process_count_is_respected(monkeypatch):
    from autotrain_unsloth.plan.probe import gpu_count

    assert gpu_count(4) == 4
    monkeypatch.setenv("AUTOTRAIN_FORCE_NUM_PROCESSES", "2")
    assert gpu_count(4) == 2
    monkeypatch.setenv("AUTOTRAIN_FORCE_NUM_PROCESSES", "8")
    with pytest.raises(PlanError, match="from 1 to the 4 visible GPUs"):
        gpu_count(4)


PREFERENCE = dict(prompt_text_column="prompt", text_column="chosen", rejected_text_column="rejected")


@pytest.mark.parametrize("trainer, backend", [("dpo", "unsloth"), ("orpo", "unsloth"), ("reward", "transformers")])
def test_preference_trainers_backend(trainer, backend):
    plan = decide(LLMTrainingParams(model="/m", unsloth=True, trainer=trainer, **LORA, **PREFERENCE), GPU_UNSLOTH)
    assert plan.backend == backend
    fallback = [warning for warning in plan.warnings if "Unsloth was asked for but will not run" in warning]
    assert bool(fallback) == (backend == "transformers")
    if fallback:
        assert "trainer 'reward' trains a sequence classifier" in fallback[0]


def test_preference_pairs_count_twice_in_the_memory_estimate_and_full_dpo_is_not_sized():
    sft = decide(LLMTrainingParams(model="/m", unsloth=True, trainer="sft", block_size=2048, **QLORA), H100)
    dpo = decide(LLMTrainingParams(model="/m", unsloth=True, trainer="dpo", block_size=2048, **QLORA, **PREFERENCE), H100)
    assert "for 4 x 2048 tokens" in " ".join(dpo.reasons) and "for 2 x 2048 tokens" in " ".join(sft.reasons)
    assert dpo.memory_estimate_gib["total"] > sft.memory_estimate_gib["total"]
    full = decide(LLMTrainingParams(model="/m", unsloth=True, trainer="dpo", block_size=2048, **FULL, **PREFERENCE), H100)
    assert full.gradient_checkpointing == "unsloth" and full.memory_estimate_gib is None
    assert "frozen reference model" in " ".join(full.reasons)


CHATML_MISSING = ("<|im_start|>", "<|im_end|>")


@pytest.mark.parametrize("settings, env, expected, warned", [
    (dict(**LORA), dataclasses.replace(GPU, template_tokens_missing=CHATML_MISSING), "rows", False),
    (dict(unsloth=True, **LORA), dataclasses.replace(GPU_UNSLOTH, template_tokens_missing=CHATML_MISSING),
     "embeddings", True),
    (dict(unsloth=True, **FULL), dataclasses.replace(GPU_UNSLOTH, template_tokens_missing=CHATML_MISSING), "full", False),
    (dict(unsloth=True, **LORA), dataclasses.replace(GPU_UNSLOTH, template_tokens_missing=None), "embeddings", True),
    (dict(unsloth=True, **LORA), GPU_UNSLOTH, None, False),
])
def test_tokens_a_template_adds_are_trained_as_the_plan_says(settings, env, expected, warned):
    plan = decide(LLMTrainingParams(model="/m", trainer="sft", chat_template="chatml", **settings), env)
    assert plan.new_tokens == expected
    assert any("which this model has never seen" in warning for warning in plan.warnings) == warned
    assert ("added tokens trained: " + str(expected) in plan.render()) == (expected is not None)


def test_probe_reads_which_template_tokens_the_tokenizer_lacks(models):
    from autotrain_unsloth.plan.probe import missing_template_tokens

    assert missing_template_tokens(LLMTrainingParams(model=models["llama"], chat_template="chatml")) == CHATML_MISSING
    assert missing_template_tokens(LLMTrainingParams(model=models["llama"], chat_template="tokenizer")) == ()
    assert missing_template_tokens(LLMTrainingParams(model="/no/such/model", chat_template="chatml")) is None
