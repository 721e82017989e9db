"""The memory fit (plan/fit.py), table-tested: which settings make the step fit the GPU and the host, in order, for
real model shapes on real GPU sizes, and the refusal, before any weight loads, when nothing does."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time

import pytest

from autotrain_unsloth.memory import ModelShape
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import PlanError, decide
from tests.conftest import aitraining
from tests.test_plan import CPU, FULL, GPU_UNSLOTH, LORA, QLORA

# config.json sizes of released models (Llama 3's, Qwen2.5's and Mistral-Small's).
SHAPES = {
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=False),
    "14b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=48, num_attention_heads=40,
                num_key_value_heads=8, vocab_size=152064, tie_word_embeddings=False),
    "24b": dict(hidden_size=5120, intermediate_size=32768, num_hidden_layers=40, num_attention_heads=32,
                num_key_value_heads=8, head_dim=128, vocab_size=131072, tie_word_embeddings=False),
    "32b": dict(hidden_size=5120, intermediate_size=27648, num_hidden_layers=64, num_attention_heads=40,
                num_key_value_heads=8, vocab_size=152064, tie_word_embeddings=False),
}
GPUS = {"24": ("RTX 4090", 23.6), "80": ("H100", 79.19), "141": ("H200", 139.8)}
SETTINGS = dict(model="/m", unsloth=True, trainer="sft", batch_size=2, block_size=2048, optimizer="adamw_8bit",
                mixed_precision="bf16", lora_dropout=0.0)


def env_for(shape: str, gpu: str, host_gib: float, **changes):
    name, memory = GPUS[gpu]
    fields = dict(gpu_name=name, gpu_memory_gib=memory, host_memory_gib=host_gib, torchao_version="0.18.0",
                  model_shape=ModelShape.from_config({"model_type": "llama", **SHAPES[shape]}).to_dict())
    return dataclasses.replace(GPU_UNSLOTH, **{**fields, **changes})


# (shape, GPU, host GiB available, expected (checkpointing, state offloaded, micro-batch) or the refusal)
FULL_FINETUNING = [
    ("1b", "24", 60, ("off", False, 2)),
    ("8b", "24", 120, "does not fit"),
    ("8b", "80", 60, ("off", False, 2)),
    ("8b", "141", 120, ("off", False, 2)),
    ("14b", "24", 120, "does not fit"),
    # weights + gradients 55 GiB: the 8-bit state goes to the host, and the activations wait there too (the gradients
    # accumulated over AutoTrain's 4 micro-batches are held beside each one's activations)
    ("14b", "80", 120, ("unsloth", True, 2)),
    ("14b", "80", 60, ("unsloth", True, 2)),  # 29 GiB pinned fits a 64 GiB host's budget
    ("14b", "80", 30, ("unsloth", True, 2)),  # 21 GiB, with 8 GiB of the state kept on the GPU, fits 30 GiB's
    ("14b", "80", 20, "does not fit"),  # ... but not 20 GiB's
    ("14b", "141", 120, ("off", False, 2)),
    ("24b", "80", 120, "does not fit"),
    ("24b", "141", 120, ("unsloth", True, 2)),
    ("24b", "141", 60, ("unsloth", True, 2)),
    ("32b", "80", 120, "does not fit"),
    ("32b", "141", 120, "does not fit"),
]


@pytest.mark.parametrize("shape, gpu, host, expected", FULL_FINETUNING)
def test_full_finetuning_fits_the_gpu_and_host_or_is_refused(shape, gpu, host, expected):
    params = LLMTrainingParams(**SETTINGS, **FULL)
    env = env_for(shape, gpu, host)
    if isinstance(expected, str):
        with pytest.raises(PlanError, match=expected) as refused:
            decide(params, env)
        message = str(refused.value)
        assert f"this GPU ({GPUS[gpu][0]}) has {GPUS[gpu][1]} GiB" in message and "GiB on the GPU" in message
        assert "QLoRA (--peft --quantization int4, about" in message and "Nothing was loaded" in message
        return
    plan = decide(params, env)
    assert (plan.gradient_checkpointing, plan.optimizer_state_offload, plan.batch_size) == expected
    estimate = plan.memory_estimate_gib
    assert estimate["total"] <= estimate["budget"] and estimate["host"]["total"] <= estimate["host_budget"]
    reason = next(r for r in plan.reasons if r.startswith("memory ("))
    assert reason.count("-> fits") == 1 and reason.endswith(")") or reason.endswith("-> fits")
    # with the state offloaded, bitsandbytes' 8-bit AdamW (chunk-safe), never torchao's
    assert plan.optimizer == ("adamw_8bit" if plan.optimizer_state_offload else "adamw_torch_8bit")
    assert ("pinned host memory" in plan.update) == plan.optimizer_state_offload


def test_the_ladder_is_shown_rung_by_rung_with_its_estimates():
    plan = decide(LLMTrainingParams(**SETTINGS, **FULL), env_for("14b", "80", 120))
    reason = next(r for r in plan.reasons if r.startswith("memory ("))
    assert reason.index("checkpointing off, micro-batch 2") < reason.index("Unsloth's checkpointing")
    assert reason.count("-> too much") == 3 and "optimizer state on the host" in reason
    assert "--no-optimizer-state-offload" in reason
    table = plan.render()
    assert "host (pinned), stepped in chunks" in table and f"host {plan.memory_estimate_gib['host']['total']} GiB" in table


@pytest.mark.parametrize("settings, expected", [
    # AutoTrain's rule: checkpointing on; then the state offload
    (dict(auto_gradient_checkpointing=False), ("unsloth", True, 2)),
    # one micro-batch a step: no gradients held beside the activations, checkpointing can stay off
    (dict(gradient_accumulation=1), ("off", True, 2)),
    # the state never offloaded: nothing fits at 2, nor at 1 -> refused
    (dict(optimizer_state_offload=False), "does not fit"),
    # asked for where it would fit without: honoured
    (dict(optimizer_state_offload=True), ("off", True, 2)),
])
def test_each_rung_has_a_setting(settings, expected):
    params = LLMTrainingParams(**{**SETTINGS, **settings}, **FULL)
    env = env_for("14b", "80", 120) if "optimizer_state_offload" not in settings or not settings[
        "optimizer_state_offload"] else env_for("8b", "80", 120)
    if isinstance(expected, str):
        with pytest.raises(PlanError, match=expected):
            decide(params, env)
        return
    plan = decide(params, env)
    assert (plan.gradient_checkpointing, plan.optimizer_state_offload, plan.batch_size) == expected


def test_a_smaller_micro_batch_keeps_the_global_batch_and_says_so():
    # QLoRA on the transformers path: 8 x 2048 tokens of fp32 logits do not fit a 24 GiB GPU, 2 x 2048 do
    settings = {**SETTINGS, "unsloth": False, "batch_size": 8, "gradient_accumulation": 2}
    plan = decide(LLMTrainingParams(**settings, **QLORA), env_for("8b", "24", 120))
    assert (plan.batch_size, plan.gradient_accumulation, plan.gradient_checkpointing) == (2, 8, "on")
    assert any("the same 16 rows per optimizer step" in warning for warning in plan.warnings)
    assert next(line for line in plan.render().splitlines() if "batch x accum." in line).split()[-6:] == "8 x 2 2 x 8".split()
    with pytest.raises(PlanError, match="does not fit"):
        decide(LLMTrainingParams(**settings, auto_micro_batch=False, **QLORA), env_for("8b", "24", 120))


def test_the_environment_variable_asks_for_the_state_offload():
    plan = decide(LLMTrainingParams(**SETTINGS, **FULL), env_for("8b", "80", 120, offload_variable=True))
    assert plan.optimizer_state_offload and plan.optimizer == "adamw_8bit"
    assert not decide(LLMTrainingParams(**SETTINGS, **FULL), env_for("8b", "80", 120, offload_variable=False)
                      ).optimizer_state_offload


@pytest.mark.parametrize("asked, runs", [("paged_adamw_8bit", "adamw_8bit"), ("paged_adamw_32bit", "adamw_torch")])
def test_paged_optimizers_run_resident_with_the_state_offloaded_where_it_does_not_fit(asked, runs):
    # 14B's state does not fit beside its weights and gradients: paged memory would oversubscribe the GPU
    host = 250 if asked == "paged_adamw_32bit" else 120  # fp32 AdamW state: 8 bytes a parameter on the host
    plan = decide(LLMTrainingParams(**{**SETTINGS, "optimizer": asked}, **FULL), env_for("14b", "80", host))
    assert plan.optimizer_state_offload and plan.optimizer == runs
    assert any("oversubscribe" in reason for reason in plan.reasons)
    # 8B's fits: paged as asked
    small = decide(LLMTrainingParams(**{**SETTINGS, "optimizer": asked}, **FULL), env_for("8b", "141", 120))
    assert not small.optimizer_state_offload and small.optimizer == asked


@pytest.mark.parametrize("settings, env, error", [
    (dict(optimizer_state_offload=True, **QLORA), env_for("8b", "80", 120), "LoRA's optimizer state is small"),
    (dict(optimizer_state_offload=True, optimizer="adamw_torch_8bit", **FULL), env_for("8b", "80", 120),
     "steps its whole state at once"),
    # the transformers path offloads too, but 24B's weights and gradients alone fill an 80 GiB GPU
    (dict(unsloth=False, **FULL), env_for("24b", "80", 120), "does not fit"),
])
def test_what_cannot_offload_is_refused(settings, env, error):
    with pytest.raises(PlanError, match=error):
        decide(LLMTrainingParams(**{**SETTINGS, **settings}), env)


@pytest.mark.parametrize("settings, env, expected, why", [
    (dict(unsloth=True, **FULL), env_for("8b", "80", 120), "off", "checkpointing off, micro-batch 2"),
    (dict(unsloth=True, **QLORA), env_for("8b", "80", 120), "off", "-> fits"),
    (dict(**LORA), env_for("8b", "80", 120, unsloth_version=None), "off", "-> fits"),
    (dict(unsloth=True, **{**FULL}, batch_size=8), env_for("8b", "80", 120), "unsloth", "Unsloth's checkpointing"),
    (dict(**FULL, batch_size=8), env_for("8b", "80", 120, unsloth_version=None), "on", "checkpointing on"),
    (dict(unsloth=True, disable_gradient_checkpointing=True, **FULL), env_for("8b", "80", 120), "off", "fits"),
    (dict(unsloth=True, **FULL), env_for("8b", "80", 120, out_of_memory_without_checkpointing=True), "unsloth",
     "Unsloth's checkpointing"),
    (dict(unsloth=True, **FULL), env_for("8b", "80", 120, model_shape=None), "unsloth", "could not be read"),
    (dict(unsloth=True, **FULL), env_for("8b", "80", 120, gpu_memory_gib=None), "unsloth", "GPU's memory is unknown"),
    (dict(**LORA), dataclasses.replace(CPU, model_shape=env_for("8b", "80", 1).model_shape), "on",
     "host's memory is unknown"),
])
def test_gradient_checkpointing_follows_the_fit(settings, env, expected, why):
    plan = decide(LLMTrainingParams(**{**SETTINGS, **settings}), env)
    assert plan.gradient_checkpointing == expected
    reason = next(r for r in plan.reasons if r.startswith("memory"))
    assert why in reason, reason


def test_cpu_training_is_sized_against_the_host():
    cpu = dataclasses.replace(CPU, host_memory_gib=20.0,
                              model_shape=ModelShape.from_config({"model_type": "llama", **SHAPES["1b"]}).to_dict())
    plan = decide(LLMTrainingParams(**{**SETTINGS, "block_size": 512}, **LORA), cpu)
    assert plan.memory_estimate_gib["budget"] == 16.0 and plan.gradient_checkpointing in ("off", "on")
    big = dataclasses.replace(cpu, model_shape=ModelShape.from_config({"model_type": "llama", **SHAPES["32b"]}).to_dict())
    with pytest.raises(PlanError, match="this host has 20.0 GiB available"):
        decide(LLMTrainingParams(**SETTINGS, **FULL), big)


def test_a_model_too_large_for_the_machine_is_refused_by_the_cli_before_any_weight_is_read(tmp_path, data_dir):
    from autotrain_unsloth.tiny_models import model_config

    folder = tmp_path / "qwen-32b-shape"
    tokenizer_source = tmp_path / "tiny"
    from autotrain_unsloth.tiny_models import build_tiny_model

    build_tiny_model("llama", str(tokenizer_source), ["a b c"] * 8)
    config = model_config("llama", vocab_size=512).to_dict()
    config.update(SHAPES["32b"], vocab_size=512)
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    for name in os.listdir(tokenizer_source):
        if name.startswith(("tokenizer", "special_tokens")):
            (folder / name).write_bytes((tokenizer_source / name).read_bytes())
    started = time.time()
    result = aitraining("llm", "--train", "--model", str(folder), "--data-path", data_dir, "--project-name", "big",
                        "--full-finetuning", "--trainer", "sft", cwd=tmp_path)
    assert result.returncode != 0 and time.time() - started < 60
    assert "full fine-tuning of this 27.7B-parameter model does not fit" in result.stderr  # Qwen2.5-32B, 512 tokens
    assert "this host has" in result.stderr and "GiB available" in result.stderr and "LoRA (--peft)" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "big" / "model.safetensors").exists()
    dry = aitraining("llm", "--train", "--model", str(folder), "--data-path", data_dir, "--project-name", "big",
                     "--full-finetuning", "--trainer", "sft", "--dry-run", cwd=tmp_path)
    assert dry.returncode != 0 and "27.7B-parameter model does not fit" in dry.stderr


def test_the_transformers_path_fits_14b_with_the_state_offloaded_as_well():
    plan = decide(LLMTrainingParams(**{**SETTINGS, "unsloth": False}, **FULL), env_for("14b", "80", 120))
    assert (plan.backend, plan.gradient_checkpointing, plan.optimizer_state_offload) == ("transformers", "on", True)


@pytest.mark.parametrize("shape, gpu", [("14b", "80"), ("24b", "141")])
def test_the_headroom_keeps_part_of_an_offloaded_state_on_the_gpu(shape, gpu):
    from autotrain_unsloth.plan.fit import RESIDENT_STATE_SLACK_GIB

    plan = decide(LLMTrainingParams(**SETTINGS, **FULL), env_for(shape, gpu, 120))
    estimate, resident = plan.memory_estimate_gib, plan.optimizer_state_resident_gib
    assert plan.optimizer_state_offload and resident > 0
    # the GPU holds it within the budget and its slack; the host holds the rest
    assert estimate["total"] <= estimate["budget"] - RESIDENT_STATE_SLACK_GIB + 0.5
    state = ModelShape(**env_for(shape, gpu, 120).model_shape).parameters * 2 / 2**30  # 8-bit AdamW: 2 bytes each
    assert estimate["host"]["optimizer_states"] + resident == pytest.approx(state, abs=0.02)
    assert f"({resident} GiB of it kept on the GPU" in next(r for r in plan.reasons if r.startswith("memory ("))
    assert f"({resident} GiB of it on the GPU)" in plan.update and f"{resident} GiB of it on the GPU" in plan.render()


@pytest.mark.parametrize("shape, gpu, free, outcome", [
    # 24B in bf16: 44 GiB of final weights; a checkpoint adds the 8-bit state (88 GiB)
    ("24b", "141", 30.0, "error"),
    ("24b", "141", 100.0, "warning"),
    ("24b", "141", 300.0, "fits"),
    ("14b", "80", 40.0, "warning"),
])
def test_the_disk_must_hold_the_final_weights_before_anything_loads(shape, gpu, free, outcome):
    params = LLMTrainingParams(**SETTINGS, **FULL)
    env = env_for(shape, gpu, 120, disk_free_gib=free)
    if outcome == "error":
        with pytest.raises(PlanError, match=rf"the final outputs of this run \(weights, and any merged copy or GGUF "
                                            rf"file\) need \d+\.\d GiB and the disk of the "
                                            rf"project folder .* has {free} GiB free.*Nothing was loaded"):
            decide(params, env)
        return
    plan = decide(params, env)
    assert any(reason.startswith("disk: the project folder") for reason in plan.reasons)
    warned = [w for w in plan.warnings if "checkpoints of" in w]
    assert bool(warned) == (outcome == "warning")


@pytest.mark.parametrize("outputs, needed", [
    (dict(merge_adapter=True), "1[45]"),
    (dict(merged_copy=True), "1[45]"),  # the adapter and the merged copy beside it
    (dict(export_gguf="q8_0"), "2[23]"),  # the merged model, then the GGUF file made from it (8 GiB)
    (dict(merge_adapter=True, export_gguf="bf16"), "30"),
])
def test_a_lora_run_needs_little_disk_unless_it_writes_a_merged_model_or_gguf(outputs, needed):
    env = env_for("8b", "80", 120, disk_free_gib=5.0, gguf_installed=True)
    decide(LLMTrainingParams(**SETTINGS, **QLORA), env)
    with pytest.raises(PlanError, match=f"need {needed}") as raised:
        decide(LLMTrainingParams(**SETTINGS, **QLORA, **outputs), env)
    assert str(raised.value).count("\n  - ") == 1  # the disk, and nothing else


def test_a_gguf_export_of_a_full_finetune_is_counted_beside_the_weights():
    params = LLMTrainingParams(**SETTINGS, **FULL, export_gguf="f16")
    plan = decide(params, env_for("8b", "80", 120, disk_free_gib=300.0, gguf_installed=True))
    assert any("the final outputs need 29.9 GiB" in reason for reason in plan.reasons), plan.reasons


def test_each_process_pins_its_own_offloaded_state_in_host_memory():
    # two GPUs under DDP: each process holds the whole 8-bit state, so the host holds two
    params = LLMTrainingParams(**{**SETTINGS, "distributed_backend": "ddp"}, **FULL)
    plan = decide(params, env_for("14b", "80", 60, gpu_count=2))
    assert (plan.num_processes, plan.optimizer_state_offload) == (2, True)
    reason = next(r for r in plan.reasons if r.startswith("memory ("))
    each = plan.memory_estimate_gib["host"]["total"]
    assert f"host {round(2 * each, 2)} GiB (2 processes, {each} GiB each) -> fits" in reason
    with pytest.raises(PlanError) as refused:
        decide(params, env_for("14b", "80", 40, gpu_count=2))
    needed = float(re.search(r"GiB on the GPU and ([\d.]+) GiB of host memory", str(refused.value)).group(1))
    assert needed > 32.0 and "the host 40 GiB available (budget 32.0)" in str(refused.value)
    assert decide(params, env_for("14b", "80", 40, gpu_count=1)).num_processes == 1  # one process: fits
