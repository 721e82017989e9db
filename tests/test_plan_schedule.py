"""The step schedule (plan/schedule.py) and the CPU speed rules (plan/cpu.py), table-tested on the pure
decision: counts in the environment -> batch settings, steps and warnings in the plan."""

from __future__ import annotations

import dataclasses

import pytest

from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import Environment, decide
from autotrain_unsloth.plan.schedule import USEFUL_STEPS, optimizer_steps

CPU = Environment(model_type="llama")
GPU = Environment(cuda=True, bf16=True, gpu_count=1, gpu_name="H100", gpu_memory_gib=80.0, model_type="llama")


def counted(env: Environment, sequences: int, rows: int | None = None, length: int = 1024, packing: bool = False):
    counts = {"rows": rows or sequences, "tokens": sequences * 100, "sequences": sequences, "sequence_length": length,
              "packing": packing}
    return dataclasses.replace(env, data_counts=counts)


def sft(**given) -> LLMTrainingParams:
    return LLMTrainingParams(model="m", trainer="sft", peft=True, quantization=None, **{"packing": False, **given})


@pytest.mark.parametrize("sequences, batch, accumulation, processes, epochs, max_steps, expected", [
    (160, 8, 4, 1, 3, -1, (5, 15)),  # 20 batches an epoch, 4 to a step
    (161, 8, 4, 1, 1, -1, (6, 6)),  # a short last batch, and a short last accumulation, still step
    (8, 8, 4, 1, 3, -1, (1, 3)),  # the issue's packed run: one step an epoch
    (100, 2, 1, 4, 2, -1, (13, 26)),  # 4 processes share the sequences
    (100, 2, 1, 1, 5, 7, (50, 7)),  # max_steps wins
])
def test_optimizer_steps_count_as_the_trainer_does(sequences, batch, accumulation, processes, epochs, max_steps, expected):
    assert optimizer_steps(sequences, batch, accumulation, processes, epochs, max_steps) == expected


def test_the_issue_run_on_packed_rows_warns_and_names_the_settings():
    # 160 rows packed into 8 sequences, batch 8 given, accumulation left at 4: one step an epoch at best
    plan = decide(sft(batch_size=8, epochs=3, packing=True), counted(GPU, 8, rows=160, packing=True))
    assert (plan.batch_size, plan.gradient_accumulation) == (8, 1)  # the default accumulation lowered
    assert plan.steps["steps"] == 3 and plan.steps["steps_per_epoch"] == 1 and plan.steps["warmup_steps"] == 1
    warning = next(w for w in plan.warnings if "optimizer steps" in w)
    assert f"makes 3 optimizer steps, fewer than {USEFUL_STEPS}" in warning
    assert "--epochs (now 3; 30 would do)" in warning and "--batch-size (now 8)" in warning and "--no-packing" in warning
    shown = plan.render()
    assert "160 rows, 800 tokens -> 8 sequences" in shown and "1 an epoch, 3 in all, 1 warm-up" in shown
    assert "8 x 4" in shown and "8 x 1" in shown


def test_defaults_are_lowered_only_as_far_as_needed_and_said():
    plan = decide(sft(epochs=3), counted(GPU, 160))  # 2 x 4 would make 60 steps: kept
    assert (plan.batch_size, plan.gradient_accumulation, plan.steps["steps"]) == (2, 4, 60)
    plan = decide(sft(batch_size=8, epochs=3), counted(GPU, 160))  # 8 x 4: 15 steps -> 8 x 2: 30
    assert (plan.batch_size, plan.gradient_accumulation, plan.steps["steps"]) == (8, 2, 30)
    assert any("batch 8 x gradient accumulation 2 (automatic: 8 x 4, gradient_accumulation left at the default, "
               "make 15" in r for r in plan.reasons)
    assert not any("optimizer steps, fewer" in w for w in plan.warnings)
    plan = decide(sft(), counted(GPU, 20))  # both left: accumulation to 1, then batch to 1 (20 steps, still few)
    assert (plan.batch_size, plan.gradient_accumulation, plan.steps["steps"]) == (1, 1, 20)
    assert any("fewer than 30" in w for w in plan.warnings)


def test_settings_given_are_kept_and_warned_about():
    plan = decide(sft(batch_size=8, gradient_accumulation=4, epochs=3), counted(GPU, 160))
    assert (plan.batch_size, plan.gradient_accumulation, plan.steps["steps"]) == (8, 4, 15)
    assert any("makes 15 optimizer steps" in w and "--gradient-accumulation (now 4)" in w for w in plan.warnings)
    plan = decide(sft(max_steps=5), counted(GPU, 160))  # max_steps is the user's step count: kept, and named
    assert plan.gradient_accumulation == 4 and any("Raise --max-steps (now 5)" in w for w in plan.warnings)


def test_a_warmup_taking_most_of_the_steps_is_warned_about():
    plan = decide(sft(warmup_ratio=0.6, max_steps=40), counted(GPU, 1000))
    assert plan.steps["warmup_steps"] == 24
    assert any("warm-up takes 24 of the 40 optimizer steps (warmup_ratio=0.6)" in w for w in plan.warnings)


def test_without_counts_or_for_another_length_the_settings_stay_as_given():
    for env in (GPU, counted(GPU, 8, length=512)):
        plan = decide(sft(batch_size=8), env)
        assert (plan.batch_size, plan.gradient_accumulation, plan.steps) == (8, 4, None)
        assert any(reason.startswith("steps: not counted") for reason in plan.reasons)


def test_cpu_plans_turn_checkpointing_and_packing_off_with_their_reason():
    from tests.test_plan_fit import env_for

    # sized against the host's memory (plan/fit.py): a 1B fits without checkpointing in 20 GiB
    cpu = dataclasses.replace(CPU, host_memory_gib=20.0, model_shape=env_for("1b", "80", 1).model_shape)
    plan = decide(LLMTrainingParams(model="m", trainer="sft", peft=True, quantization=None, block_size=512), cpu)
    assert plan.gradient_checkpointing == "off" and plan.packing is False
    assert any(r.startswith("memory (host budget") and "on a CPU, training without recomputation measured faster" in r
               for r in plan.reasons)
    assert any(r.startswith("sft packing off (automatic, CPU") for r in plan.reasons)
    asked = decide(sft(packing=True, auto_gradient_checkpointing=False), cpu)
    assert asked.gradient_checkpointing == "on" and asked.packing is True
    gpu = decide(LLMTrainingParams(model="m", trainer="sft", peft=True, quantization=None), GPU)  # GPU rules unchanged
    assert gpu.packing is True
