"""The decision, table-tested: Liger's kernels on the transformers path. On where liger-kernel is installed, a CUDA
GPU trains, Liger patches the architecture and the trainer's loss is a causal LM's; said in the plan either way
where it matters; asked for where it cannot run, an error that names why."""

from __future__ import annotations

import dataclasses

import pytest

from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import PlanError, decide
from autotrain_unsloth.trainers.arguments import training_arguments
from tests.test_plan import CPU, GPU, GPU_UNSLOTH, LORA, QLORA

PAIRS = dict(prompt_text_column="prompt", text_column="chosen", rejected_text_column="rejected")
GPU_LIGER = dataclasses.replace(GPU, liger_installed=True)


def settings_for(**settings) -> LLMTrainingParams:
    return LLMTrainingParams(model="m", data_path="d", project_name="p", **settings)


def plan_for(env, **settings):
    return decide(settings_for(**settings), env)


@pytest.mark.parametrize("settings, env, on, said", [
    (dict(trainer="sft", **LORA), GPU_LIGER, True, "Liger kernels on (RMSNorm, RoPE, SwiGLU, the loss fused with the "
                                                  "output layer): automatic"),
    (dict(trainer="default", **QLORA), GPU_LIGER, True, "automatic: liger-kernel is installed"),
    (dict(trainer="sft", use_liger_kernel=True, **LORA), GPU_LIGER, True, "use_liger_kernel=True"),
    (dict(trainer="sft", use_liger_kernel=False, **LORA), GPU_LIGER, False, "Liger kernels off: use_liger_kernel=False"),
    (dict(trainer="dpo", **PAIRS, **LORA), GPU_LIGER, False, "Liger kernels off: trainer 'dpo' computes its own loss"),
    (dict(trainer="sft", **LORA), dataclasses.replace(GPU_LIGER, model_type="gpt2"), False,
     "Liger kernels off: model_type 'gpt2' is not one Liger is used for here (llama, mistral, gemma, qwen2, gemma2, "
     "qwen3, phi3)"),
    # Unsloth's path, no GPU, or no liger-kernel: off without a word (nothing the user asked for changes)
    (dict(trainer="sft", unsloth=True, **LORA), dataclasses.replace(GPU_UNSLOTH, liger_installed=True), False, None),
    (dict(trainer="sft", **LORA), GPU, False, None),
    (dict(trainer="sft", **LORA), dataclasses.replace(CPU, liger_installed=True), False, None),
])
def test_liger_rule(settings, env, on, said):
    params = settings_for(**settings)
    plan = decide(params, env)
    assert plan.liger is on
    assert training_arguments(params, plan, rows=8)["use_liger_kernel"] is on
    if said:
        assert any(said in reason for reason in plan.reasons), plan.reasons
    else:
        assert not any("Liger" in reason for reason in plan.reasons + plan.warnings), plan.reasons


@pytest.mark.parametrize("settings, env, why", [
    (dict(unsloth=True, **LORA), dataclasses.replace(GPU_UNSLOTH, liger_installed=True),
     "Unsloth's path runs its own kernels"),
    (dict(**LORA), GPU, "liger-kernel is not installed (pip install 'autotrain-unsloth[liger]')"),
    (dict(**LORA), CPU, "no CUDA GPU (Liger's kernels are Triton)"),
    (dict(trainer="reward", **PAIRS, **LORA), GPU_LIGER, "trainer 'reward' computes its own loss"),
])
def test_liger_asked_where_it_cannot_run_is_refused(settings, env, why):
    with pytest.raises(PlanError) as refused:
        plan_for(env, trainer=settings.pop("trainer", "sft"), use_liger_kernel=True, **settings)
    assert "use_liger_kernel=True: " in str(refused.value) and why in str(refused.value)


def test_the_plan_table_shows_asked_and_chosen():
    from autotrain_unsloth.plan.render import render

    table = render(plan_for(GPU_LIGER, trainer="sft", **LORA))
    assert "Liger kernels        auto" in table and table.split("Liger kernels")[1].split("\n")[0].endswith("on")
