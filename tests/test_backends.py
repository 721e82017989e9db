"""What each backend is told to do, per plan, and the check of what was loaded, on real models.

Unsloth itself needs a GPU (tests/gpu); here: the exact arguments it would get, and the verification that
catches a library training something other than planned."""

from __future__ import annotations

import dataclasses

import pytest

from autotrain_unsloth.backends import transformers as transformers_backend
from autotrain_unsloth.backends import unsloth as unsloth_backend
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import decide
from autotrain_unsloth.verify import PlanMismatch, inspect_model, mismatches, verify_loaded
from tests.test_plan import CPU, GPU_UNSLOTH, GPU_UNSLOTH_NO_BF16

UNSLOTH_CASES = [
    (
        dict(full_finetuning=True),
        GPU_UNSLOTH,
        dict(full_finetuning=True, load_in_4bit=False, load_in_8bit=False, dtype="bfloat16"),
    ),
    (dict(full_finetuning=True), GPU_UNSLOTH_NO_BF16, dict(full_finetuning=True, load_in_4bit=False, dtype="float16")),
    (
        dict(peft=True, quantization=None),
        GPU_UNSLOTH,
        dict(full_finetuning=False, load_in_4bit=False, load_in_8bit=False, dtype="bfloat16"),
    ),
    (dict(peft=True, quantization="int4"), GPU_UNSLOTH, dict(full_finetuning=False, load_in_4bit=True, load_in_8bit=False)),
    (dict(peft=True, quantization="int8"), GPU_UNSLOTH, dict(full_finetuning=False, load_in_4bit=False, load_in_8bit=True)),
]


@pytest.mark.parametrize("settings, env, expected", UNSLOTH_CASES)
def test_unsloth_from_pretrained_arguments(settings, env, expected):
    params = LLMTrainingParams(model="/models/llama", unsloth=True, trainer="sft", seed=3, **settings)
    kwargs = unsloth_backend.from_pretrained_kwargs(params, decide(params, env), max_seq_length=512)
    for key, value in expected.items():
        assert kwargs[key] == value, key
    # load_in_4bit defaults to True inside Unsloth: it is always passed, as are the rest
    assert {"load_in_4bit", "load_in_8bit", "full_finetuning", "dtype", "max_seq_length"} <= kwargs.keys()
    assert kwargs["use_exact_model_name"] is True and kwargs["random_state"] == 3 and kwargs["max_seq_length"] == 512
    assert kwargs["use_gradient_checkpointing"] == "unsloth"


def test_unsloth_lora_arguments():
    params = LLMTrainingParams(unsloth=True, peft=True, lora_r=8, lora_alpha=16, lora_dropout=0.0, seed=5)
    kwargs = unsloth_backend.get_peft_model_kwargs(params, decide(params, GPU_UNSLOTH), 256)
    assert kwargs["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert (kwargs["r"], kwargs["lora_alpha"], kwargs["lora_dropout"], kwargs["random_state"]) == (8, 16, 0.0, 5)
    off = LLMTrainingParams(unsloth=True, peft=True, disable_gradient_checkpointing=True)
    assert unsloth_backend.get_peft_model_kwargs(off, decide(off, GPU_UNSLOTH), 256)["use_gradient_checkpointing"] is False


def test_unsloth_must_be_imported_first():
    import transformers  # noqa: F401  (as any code that touched a model would have)

    with pytest.raises(RuntimeError, match="imported before unsloth"):
        unsloth_backend.import_unsloth(LLMTrainingParams())


def load(params, plan, models):
    from autotrain_unsloth.data.job.load import load_tokenizer

    return transformers_backend.load_model(params, plan, load_tokenizer(params, 64), 64)


def test_verification_matches_real_lora_and_full_models(models, tmp_path):
    lora = LLMTrainingParams(model=models["llama"], peft=True, quantization=None)
    lora_plan = decide(lora, CPU)
    lora_model = load(lora, lora_plan, models)
    facts = inspect_model(lora_model)
    assert facts["lora_layers"] == 14 and 0 < facts["trainable_share"] < 1 and mismatches(lora_plan, facts) == []

    full = LLMTrainingParams(model=models["llama"], quantization=None)
    full_plan = decide(full, CPU)
    full_model = load(full, full_plan, models)
    assert mismatches(full_plan, inspect_model(full_model)) == []

    # The silent failures seen in the field, each caught before training:
    assert "no LoRA layer was attached" in " ".join(mismatches(lora_plan, inspect_model(full_model)))
    assert "only" in " ".join(mismatches(full_plan, inspect_model(lora_model)))
    qlora_plan = dataclasses.replace(lora_plan, method="qlora-4bit")
    assert "no 4-bit layer was loaded" in " ".join(mismatches(qlora_plan, facts))
    bf16_plan = dataclasses.replace(full_plan, weights_dtype="bf16")
    with pytest.raises(PlanMismatch, match="bf16 weights planned, loaded mostly fp32"):
        verify_loaded(full_model, bf16_plan, str(tmp_path))
    assert (tmp_path / "plan.json").exists()  # what was found is recorded even when it stops the job


@pytest.mark.parametrize(
    "failure, falls_back",
    [
        (NotImplementedError("Unsloth: Falcon is not supported yet"), True),
        (ValueError("Unsloth: not a known model"), True),
        (ImportError("needs a newer transformers"), True),
        ("out of memory", False),  # torch.OutOfMemoryError is a RuntimeError: the user must see it
        (RuntimeError("CUDA error: an illegal memory access"), False),
        (KeyError("model.layers.0"), False),
        (AttributeError("'NoneType' object has no attribute 'config'"), False),
    ],
)
def test_only_unsupported_model_errors_fall_back_from_unsloth(failure, falls_back):
    import torch

    from autotrain_unsloth.backends import UnslothLoadError
    from autotrain_unsloth.trainers.clm.__main__ import remedy

    exc = torch.OutOfMemoryError("CUDA out of memory") if failure == "out of memory" else failure
    assert unsloth_backend.not_supported(exc) is falls_back
    # The job's routing: an Unsloth load error falls back; nothing else does unless it has a remedy of its own.
    params = LLMTrainingParams(unsloth=True, trainer="sft", peft=True, disable_gradient_checkpointing=True)
    plan = decide(params, GPU_UNSLOTH)
    assert remedy(UnslothLoadError(str(exc)), params, plan) == {"unsloth_load_error": str(exc)}
    assert remedy(exc, params, plan) is None  # checkpointing was off by request: no retry either


def test_out_of_memory_is_retried_only_when_checkpointing_was_turned_off_automatically():
    import torch

    from autotrain_unsloth.trainers.clm.__main__ import remedy
    from tests.test_plan_automatic import H100

    auto = LLMTrainingParams(model="/m", trainer="sft", peft=True, quantization=None)
    plan = decide(auto, H100)
    assert plan.gradient_checkpointing == "off"
    oom = torch.OutOfMemoryError("CUDA out of memory")
    assert remedy(oom, auto, plan) == {"out_of_memory_without_checkpointing": True}
    assert remedy(KeyError("x"), auto, plan) is None


def test_unsloth_sets_no_hub_offline_switch_for_the_job(tmp_path, monkeypatch):
    """Only loading a local model goes offline, and only while it loads: a Hub dataset read later still works."""
    import huggingface_hub.constants as hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    params = LLMTrainingParams(model=str(tmp_path), project_name="p")
    assert "HF_HUB_OFFLINE" not in unsloth_backend.unsloth_environment(params)
    before = hub.HF_HUB_OFFLINE
    with unsloth_backend.offline_for_local_model(str(tmp_path)):
        assert hub.HF_HUB_OFFLINE is True and __import__("os").environ["HF_HUB_OFFLINE"] == "1"
    assert hub.HF_HUB_OFFLINE == before and "HF_HUB_OFFLINE" not in __import__("os").environ
    with unsloth_backend.offline_for_local_model("meta-llama/Llama-3.2-1B"):
        assert hub.HF_HUB_OFFLINE == before


def test_unsloth_under_ddp_loads_onto_each_process_own_gpu(monkeypatch):
    import dataclasses as dc

    params = LLMTrainingParams(model="/models/llama", unsloth=True, trainer="sft", peft=True)
    two = decide(params, dc.replace(GPU_UNSLOTH, gpu_count=2))
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert unsloth_backend.from_pretrained_kwargs(params, two, 512)["device_map"] == {"": 1}
    one = decide(params, GPU_UNSLOTH)
    assert "device_map" not in unsloth_backend.from_pretrained_kwargs(params, one, 512)  # Unsloth's own default


def test_unsloth_full_fine_tuning_gets_the_varlen_attention_as_attn_implementation():
    """Unsloth loads full fine-tuning through FastModel: transformers' modelling code, whose attention is chosen by
    attn_implementation, not by Unsloth's dispatch (which only LoRA and QLoRA go through)."""
    varlen_gpu = dataclasses.replace(GPU_UNSLOTH, torch_varlen="no-gqa")
    full = LLMTrainingParams(model="/models/llama", unsloth=True, trainer="sft", full_finetuning=True)
    assert unsloth_backend.from_pretrained_kwargs(full, decide(full, varlen_gpu), 512)["attn_implementation"] == "torch_varlen"
    qlora = LLMTrainingParams(model="/models/llama", unsloth=True, trainer="sft", peft=True, quantization="int4")
    assert "attn_implementation" not in unsloth_backend.from_pretrained_kwargs(qlora, decide(qlora, varlen_gpu), 512)


def test_a_model_loaded_with_other_attention_than_planned_is_recorded_as_it_is(models, capsys):
    from transformers import AutoModelForCausalLM

    full = LLMTrainingParams(model=models["llama"], unsloth=True, trainer="sft", full_finetuning=True)
    plan = decide(full, dataclasses.replace(GPU_UNSLOTH, torch_varlen="no-gqa"))
    assert plan.packed_attention == "torch-varlen"
    sdpa_model = AutoModelForCausalLM.from_pretrained(models["llama"], attn_implementation="sdpa")
    ran = unsloth_backend.install_packed_attention(plan, sdpa_model)
    assert ran.startswith("Unsloth loaded the model with attn_implementation 'sdpa', not the planned 'torch_varlen'")
    assert "Warning: Unsloth loaded" in capsys.readouterr().out
    from autotrain_unsloth.attention import varlen

    varlen.register()
    varlen_model = AutoModelForCausalLM.from_pretrained(models["llama"], attn_implementation="torch_varlen")
    assert unsloth_backend.install_packed_attention(plan, varlen_model).startswith("torch varlen_attn")
