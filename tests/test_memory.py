"""The memory estimate behind the memory fit (plan/fit.py): shapes read right, parts add up, and it stays close to
the peaks measured on an H100 (bench/results)."""

from __future__ import annotations

import glob
import json
import os
import sys

import pytest

from autotrain_unsloth.memory import (
    STATE_OFFLOAD_CHUNK_GIB,
    STATE_OFFLOAD_CHUNKS_IN_FLIGHT,
    ModelShape,
    training_peak_gib,
)
from tests.conftest import REPO

sys.path.insert(0, os.path.join(REPO, "bench"))
from workload import PROJECTIONS, SHAPES  # noqa: E402

BENCH_METHODS = {"qlora": "qlora-4bit", "lora": "lora", "full": "full"}


def real_parameter_count(config) -> int:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())


@pytest.mark.parametrize("name", ["llama-3.2-1b", "llama-3.1-8b"])
def test_parameter_count_matches_transformers_for_llama_3_shapes(name):
    from transformers import LlamaConfig

    config = LlamaConfig(**SHAPES[name])
    shape = ModelShape.from_config(config.to_dict())
    assert shape.parameters == real_parameter_count(config)
    assert shape.tied_embeddings == (name == "llama-3.2-1b")


@pytest.mark.parametrize("architecture", ["llama", "mistral", "gemma"])
def test_parameter_count_matches_transformers_for_tiny_architectures(architecture):
    from autotrain_unsloth.tiny_models import model_config

    config = model_config(architecture, vocab_size=512)
    assert ModelShape.from_config(config.to_dict()).parameters == real_parameter_count(config)


def test_configs_without_a_decoder_shape_give_none():
    from autotrain_unsloth.tiny_models import model_config

    assert ModelShape.from_config(model_config("gpt2", vocab_size=512).to_dict()) is None
    assert ModelShape.from_config({"model_type": "llama"}) is None


def estimate(name, method, checkpointing, tokens=4096, dropout=False, backend="unsloth", state_offload=False,
             fused_loss=False, accumulation=1):
    shape = ModelShape.from_config({"model_type": "llama", **SHAPES[name]})
    return training_peak_gib(shape, method=method, weights_dtype="bf16", compute_dtype="bf16", tokens=tokens,
                             optimizer="adamw_8bit", lora_rank=16, lora_targets=PROJECTIONS, lora_dropout=dropout,
                             checkpointing=checkpointing, backend=backend, state_offload=state_offload,
                             fused_loss=fused_loss, accumulation=accumulation)


def test_parts_add_up_and_move_the_right_way():
    full, lora, qlora = (estimate("llama-3.1-8b", m, "off") for m in ("full", "lora", "qlora-4bit"))
    for parts in (full, lora, qlora):
        assert parts["total"] == pytest.approx(sum(v for k, v in parts.items() if k not in ("total", "host")), abs=0.02)
    assert lora["weights"] > full["weights"] > 2 * qlora["weights"]  # LoRA adds its fp32 adapter to the 16-bit base
    assert full["optimizer_states"] > 100 * lora["optimizer_states"]
    assert estimate("llama-3.1-8b", "lora", "on")["total"] < lora["total"]
    assert estimate("llama-3.1-8b", "lora", "off", tokens=8192)["total"] > lora["total"]
    assert estimate("llama-3.1-8b", "lora", "off", dropout=True)["total"] > lora["total"]
    # Unsloth's checkpointing moves each layer's input to the host: less on the GPU than "on", the rest pinned
    on, moved = estimate("llama-3.1-8b", "full", "on"), estimate("llama-3.1-8b", "full", "unsloth")
    assert moved["host"]["activations"] > 0 == on["host"]["total"]
    # the state offload leaves the chunks in flight on the GPU (one coming in, one updated, one going out) and puts
    # the whole state on the host
    offloaded = estimate("llama-3.1-8b", "full", "off", state_offload=True)
    in_flight = STATE_OFFLOAD_CHUNKS_IN_FLIGHT * STATE_OFFLOAD_CHUNK_GIB
    assert offloaded["optimizer_states"] == in_flight and offloaded["host"]["optimizer_states"] == full["optimizer_states"]
    assert full["total"] - offloaded["total"] == pytest.approx(full["optimizer_states"] - in_flight, abs=0.02)


def bench_records():
    for path in sorted(glob.glob(os.path.join(REPO, "bench", "results", "*.json"))):
        with open(path) as f:
            results = json.load(f)
        for record in results.get("records", []):  # not every file holds throughput records (kernel timings)
            if record.get("model") in SHAPES and record["peak_gib"]:
                yield os.path.basename(path), record


# The cells the plan's estimate is held to (within 15%), and a looser bound for every other run of our paths.
CLOSE_CELLS = {("llama-3.2-1b", "full"), ("llama-3.1-8b", "full"), ("llama-14b", "full"), ("llama-3.1-8b", "qlora")}
OUR_PATHS = ("ours", "ours-auto", "ours-transformers", "unsloth-script")


def test_estimate_is_close_to_the_measured_peaks():
    """Every benchmarked run of our paths and Unsloth's script: the estimate for the settings it ran with against
    the peak torch measured; within 15% for full fine-tuning and 8B QLoRA (the plan refuses and offloads by it)."""
    records = [(source, r) for source, r in bench_records() if r["path"] in OUR_PATHS]
    assert records, "bench/results holds no measurements"
    for source, r in records:
        predicted = estimate(r["model"], BENCH_METHODS[r["method"]], r["gradient_checkpointing"],
                             tokens=r["batch_size"] * r["seq_len"], backend=r.get("backend", "unsloth"),
                             state_offload=bool(r.get("optimizer_state_offload")),
                             # the liger-on file's records predate the record's key
                             fused_loss=bool(r.get("liger")) or "liger-on" in source,
                             accumulation=r.get("gradient_accumulation", 1))
        # the part of an offloaded state the plan kept on the GPU (trainers/state_offload.py); Unsloth's own offload
        # (its script's, and our job's before 2026-12-06) holds one 1 GiB chunk on the GPU instead of three of 0.5
        unsloth_offload = (STATE_OFFLOAD_CHUNKS_IN_FLIGHT * STATE_OFFLOAD_CHUNK_GIB - 1.0
                           if r.get("optimizer_state_offload_by") == "unsloth" else 0.0)
        ratio = (predicted["total"] + r.get("optimizer_state_resident_gib", 0.0) - unsloth_offload) / r["peak_gib"]
        # FP8 runs keep their linears' inputs in FP8 for the backward, which the estimate does not count (it stays
        # above the peak, as docs/plan.md says): the looser bound
        fp8 = "--fp8" in r.get("ours_auto_args", "")
        low, high = (0.85, 1.15) if (r["model"], r["method"]) in CLOSE_CELLS and not fp8 else (0.85, 1.4)
        assert low <= ratio <= high, (source, r["model"], r["method"], r["path"], predicted["total"], r["peak_gib"])
