"""The decision, table-tested (continued): the automatic speed rules, sequence length and saving, devices, the
preference trainers and the tokens a chat template adds."""

from __future__ import annotations

import dataclasses

import pytest

from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import PlanError, decide
from tests.test_plan import CPU, FULL, GPU, GPU_UNSLOTH, LORA, QLORA

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
        (dict(**LORA, **BENCH), CPU, "off", "CPU: recomputing"),
        (dict(**LORA, **BENCH, auto_gradient_checkpointing=False), CPU, "on", "auto_gradient_checkpointing=False"),
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
