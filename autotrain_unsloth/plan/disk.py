"""Disk space for what the run writes, sized before any weight loads: the final outputs must fit the project
folder's disk, or the run is refused (a run that trains for an hour and then cannot save is the worst failure);
checkpoints that would not fit are a warning, since a short run may never write one."""

from __future__ import annotations

from autotrain_unsloth.memory import (
    DEFAULT_OPTIMIZER_STATE_BYTES,
    DTYPE_BYTES,
    GIB,
    OPTIMIZER_STATE_BYTES,
    ModelShape,
)
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan.types import Choice, Environment, chose

# PEFT saves the adapter in the dtype it trained in (fp32 here).
ADAPTER_BYTES = 4
# Bytes a weight in the GGUF file (outputs/gguf_export.py): q8_0 stores blocks of 32 int8 weights and one fp16 scale.
GGUF_BYTES = {"f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32}


def written_gib(params: LLMTrainingParams, shape: ModelShape, method: str, weights_dtype: str,
                optimizer: str) -> tuple[float, float]:
    """(the final outputs, one checkpoint) in GiB: full fine-tuning saves every weight and, in a checkpoint, the
    optimizer state beside them; LoRA the adapter, and the model merged into the 16-bit base when merge_adapter,
    merged_copy or a GGUF export (made from the merged model) asks for it; a GGUF file besides."""
    state_bytes = OPTIMIZER_STATE_BYTES.get(optimizer, DEFAULT_OPTIMIZER_STATE_BYTES)
    gguf = shape.parameters * GGUF_BYTES[params.export_gguf] if params.export_gguf else 0
    if method == "full":
        weights = shape.parameters * DTYPE_BYTES[weights_dtype]
        return (weights + gguf) / GIB, (weights + shape.parameters * state_bytes) / GIB
    adapter = shape.lora_parameters(params.lora_r, None)
    merges = params.merge_adapter or params.merged_copy or bool(params.export_gguf)
    merged = shape.parameters * DTYPE_BYTES[weights_dtype] if merges else 0
    return (adapter * ADAPTER_BYTES + merged + gguf) / GIB, adapter * (ADAPTER_BYTES + max(state_bytes, 2)) / GIB


def disk_space(params: LLMTrainingParams, env: Environment, method: str, weights_dtype: str, optimizer: str) -> Choice:
    folder = f"the project folder {params.project_name!r}"
    if not env.model_shape or env.disk_free_gib is None:
        missing = "the model's size is unknown" if not env.model_shape else "the free space is unknown"
        return chose(None, f"disk: not sized, {missing}")
    final, checkpoint = written_gib(params, ModelShape(**env.model_shape), method, weights_dtype, optimizer)
    free = env.disk_free_gib
    at_once = params.save_total_limit + 1  # the newest is written before the oldest kept is deleted
    reason = (f"disk: {folder} has {free:.1f} GiB free; the final outputs need {final:.1f} GiB, a checkpoint "
              f"{checkpoint:.1f} GiB (up to {at_once} at once: save_total_limit {params.save_total_limit} and the one "
              "being written)")
    if final > free:
        return chose(None, reason, error=f"the final outputs of this run (weights, and any merged copy or GGUF file) "
                                         f"need {final:.1f} GiB and the disk of {folder} "
                                         f"has {free:.1f} GiB free: free some space or put --project-name on a larger "
                                         "disk. Nothing was loaded.")
    if final + at_once * checkpoint > free:
        return chose(None, reason, warning=f"{folder} has {free:.1f} GiB free: enough for the final weights "
                                           f"({final:.1f} GiB) but not for {at_once} checkpoints of {checkpoint:.1f} GiB "
                                           "beside them; a checkpoint that cannot be written stops the run (--save-"
                                           "total-limit, or --save-minutes 0 --save-steps 0 for none but on a stop "
                                           "signal).")
    return chose(None, reason)
