"""Fit the training step to the machine before any weight loads: the cheapest memory settings that fit, or a
refusal with the numbers.

The step is sized part by part (memory.training_peak_gib: weights, gradients, optimizer state, activations,
logits) for each rung of a ladder, in order of cost, and the first rung that fits is chosen:

1. gradient checkpointing off (no forward pass recomputed);
2. checkpointing on: transformers' kind on the transformers path and on CPU, Unsloth's on its path (each layer's
   input waits in host memory, so the GPU holds one layer's activations at a time);
3. full fine-tuning: the optimizer state in pinned host memory between steps, stepped on the GPU a chunk at a
   time (trainers/state_offload.py; a chunk-safe optimizer, see speed.optimizer), as much of it as the GPU's
   headroom holds left there (resident_state_gib), so that less crosses the host link at every step;
4. a smaller micro-batch with more gradient accumulation: the same global batch, fewer tokens at once.

GPU and host memory are both checked: the state offload and Unsloth's checkpointing keep their bytes pinned on
the host. On CPU the host memory is the device. When no rung fits, the plan stops with what was needed, what
the machine has and what would fit. Each rung can be turned off by a setting (docs/plan.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from autotrain_unsloth.memory import OPTIMIZER_STATE_BYTES, ModelShape, training_peak_gib
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan.types import Backend, Choice, Dtype, Environment, Method

# Share of a GPU's memory a plan may fill: the allocator's cache reserves up to ~10% more than the tensors it holds
# (measured: 8B full fine-tuning, 52.1 GiB allocated, 56.9 reserved), and the CUDA context takes about 1 GiB.
GPU_SHARE = 0.88
CUDA_CONTEXT_GIB = 1.0
# Share of the host's available memory that pinned optimizer state and offloaded activations may take.
HOST_SHARE = 0.8
# GPU memory left free beside the resident optimizer state, over the budget's own margin: the estimate of a 14.8B
# full fine-tune's peak was 5% low (docs/benchmarks.md).
RESIDENT_STATE_SLACK_GIB = 2.0
RESIDENT_STATE_STEP_GIB = 0.5
# Optimizers whose step the state offload can run in chunks (a step that touches only parameters with gradients).
PAGED_TO_RESIDENT = {"paged_adamw_8bit": "adamw_8bit", "paged_adamw_32bit": "adamw_torch", "paged_lion_8bit": "lion_8bit",
                     "paged_lion_32bit": "lion_32bit", "paged_ademamix_8bit": "ademamix_8bit",
                     "paged_ademamix_32bit": "ademamix"}
PREFERENCE_TRAINERS = ("dpo", "orpo", "reward")


@dataclass(frozen=True)
class Rung:
    checkpointing: str  # "off", "on" or "unsloth"
    state_offload: bool
    batch_size: int


@dataclass(frozen=True)
class MemoryFit:
    """What the fit chose. estimate: the chosen rung's parts (GiB), its budget and the host's; None when unsized."""

    checkpointing: str
    state_offload: bool
    batch_size: int
    gradient_accumulation: int
    estimate: Optional[dict] = None
    resident_state_gib: float = 0.0  # with the state offloaded: how much of it stays on the GPU


def gpu_budget_gib(total_gib: float) -> float:
    return round(GPU_SHARE * (total_gib - CUDA_CONTEXT_GIB), 2)


def host_budget_gib(available_gib: float) -> float:
    return round(HOST_SHARE * available_gib, 2)


def checkpointing_kind(backend: str, cuda: bool) -> str:
    return "unsloth" if backend == "unsloth" and cuda else "on"


def _ladder(params: LLMTrainingParams, env: Environment, backend: str, method: str, offload_asked: Optional[bool]) -> list[Rung]:
    kind = checkpointing_kind(backend, env.cuda)
    if params.disable_gradient_checkpointing:
        kinds = ["off"]
    elif not params.auto_gradient_checkpointing or env.out_of_memory_without_checkpointing:
        kinds = [kind]
    else:
        kinds = ["off", kind]
    offloads = [False]
    if offload_asked is True:
        offloads = [True]
    elif offload_asked is None and offload_possible(params, env, backend, method) is None:
        offloads = [False, True]
    rungs = [Rung(k, o, params.batch_size) for o in offloads for k in kinds]
    if params.auto_micro_batch:
        last = rungs[-1]
        smaller = [b for b in range(params.batch_size - 1, 0, -1) if params.batch_size % b == 0]
        rungs += [dataclasses.replace(last, batch_size=b) for b in smaller]
    return rungs


def offload_possible(params: LLMTrainingParams, env: Environment, backend: str, method: str) -> Optional[str]:
    """None when the optimizer state can live in host memory between steps; else why not."""
    return next((why for blocked, why in (
        (method != "full", "LoRA's optimizer state is small"),
        (not env.cuda, "there is no GPU to offload from"),
        (params.distributed_backend == "deepspeed", "DeepSpeed offloads with its own settings")) if blocked), None)


def _tokens(params: LLMTrainingParams, batch_size: int, sequence: int) -> int:
    """Tokens in one micro-batch: preference trainers run the chosen and the rejected answer of each pair."""
    return batch_size * (2 if params.trainer in PREFERENCE_TRAINERS else 1) * sequence


def _accumulation(params: LLMTrainingParams, rung: Rung) -> int:
    """Gradient accumulation at the rung's micro-batch: the same rows per optimizer step as asked."""
    return params.gradient_accumulation * params.batch_size // rung.batch_size


def _size(params: LLMTrainingParams, shape: ModelShape, backend: Backend, method: Method, weights_dtype: Dtype,
          autocast: str, targets: Optional[tuple[str, ...]], sequence: int, optimizer: str, liger: bool, rung: Rung) -> dict:
    return training_peak_gib(
        shape, method=method, weights_dtype=weights_dtype, compute_dtype=autocast if autocast != "no" else weights_dtype,
        tokens=_tokens(params, rung.batch_size, sequence), optimizer=optimizer, lora_rank=params.lora_r, lora_targets=targets,
        lora_dropout=params.lora_dropout > 0, checkpointing=rung.checkpointing, backend=backend,
        state_offload=rung.state_offload, fused_loss=liger,
        accumulation=_accumulation(params, rung),
        reference_model=params.trainer == "dpo" and method == "full" and not params.model_ref)


def _describe(rung: Rung, estimate: dict, processes: int = 1, resident: float = 0.0) -> str:
    what = {"off": "checkpointing off", "on": "checkpointing on",
            "unsloth": "Unsloth's checkpointing (activations to host)"}[rung.checkpointing]
    if rung.state_offload:
        what += " + optimizer state on the host" + (
            f" ({resident} GiB of it kept on the GPU, the budget's headroom less {RESIDENT_STATE_SLACK_GIB} GiB)"
            if resident else "")
    each = f" ({processes} processes, {estimate['host']['total']} GiB each)" if processes > 1 else ""
    host = f", host {_host_needed(estimate, processes)} GiB{each}" if estimate["host"]["total"] else ""
    return f"{what}, micro-batch {rung.batch_size}: {estimate['total']} GiB{host}"


def _host_needed(estimate: dict, processes: int) -> float:
    """Host memory for every process on the machine: each one pins its own optimizer state and activations."""
    return round(estimate["host"]["total"] * processes, 2)


def memory_fit(params: LLMTrainingParams, env: Environment, backend: Backend, method: Method, weights_dtype: Dtype,
               autocast: str, targets: Optional[tuple[str, ...]], sequence: int, liger: bool = False,
               batch_size: Optional[int] = None, accumulation: Optional[int] = None, processes: int = 1) -> Choice:
    """value: MemoryFit. The first rung of the ladder that fits the GPU (or, on CPU, the host) and the host.
    batch_size, accumulation: the batch settings to fit (schedule.py's; the settings' own when not given);
    processes: training processes on this machine (one per GPU), each holding its own copy of what it offloads."""
    if batch_size and accumulation:  # the rungs below read the batch settings from params
        params = params.model_copy(update={"batch_size": batch_size, "gradient_accumulation": accumulation})
    kind = checkpointing_kind(backend, env.cuda)
    asked_offload = params.optimizer_state_offload if params.optimizer_state_offload is not None else env.offload_variable
    unsized = MemoryFit("off" if params.disable_gradient_checkpointing else kind, bool(asked_offload),
                        params.batch_size, params.gradient_accumulation)
    if asked_offload:
        blocked = offload_possible(params, env, backend, method)
        if blocked:
            return Choice(unsized, errors=(f"optimizer_state_offload=True: {blocked}",))
    shape = ModelShape(**env.model_shape) if env.model_shape else None
    device_gib = env.gpu_memory_gib if env.cuda else env.host_memory_gib
    if not (shape and device_gib):
        missing = (f"the model's size could not be read from its config.json (model_type {env.model_type!r})"
                   if not shape else "the GPU's memory is unknown" if env.cuda else "the host's memory is unknown")
        return Choice(unsized, (f"memory: not sized, {missing}; gradient checkpointing {unsized.checkpointing}",))

    optimizer = PAGED_TO_RESIDENT.get(params.optimizer, params.optimizer)
    if needs_bitsandbytes(optimizer) and not (env.bitsandbytes_installed and env.cuda):
        optimizer = "adamw_torch"  # what speed.optimizer runs instead
    budget = gpu_budget_gib(device_gib) if env.cuda else host_budget_gib(device_gib)
    host_budget = host_budget_gib(env.host_memory_gib) if env.cuda and env.host_memory_gib else None
    where = f"{'GPU' if env.cuda else 'host'} budget {budget} GiB of {device_gib}" + (
        f", host budget {host_budget} GiB" if host_budget else "")
    tried = []
    for rung in _ladder(params, env, backend, method, asked_offload):
        estimate = _size(params, shape, backend, method, weights_dtype, autocast, targets, sequence, optimizer, liger,
                         rung)
        # the state the GPU's headroom holds stays there, and so needs no host memory
        resident = resident_state_gib(estimate, budget) if rung.state_offload and estimate["total"] <= budget else 0.0
        estimate = _with_resident_state(estimate, resident)
        fits = estimate["total"] <= budget and (host_budget is None or _host_needed(estimate, processes) <= host_budget)
        tried.append(_describe(rung, estimate, processes, resident) + (" -> fits" if fits else " -> too much"))
        if fits:
            accumulation = _accumulation(params, rung)
            estimate = {**estimate, "budget": budget, "gpu": env.gpu_memory_gib, "host_budget": host_budget,
                        "tokens": _tokens(params, rung.batch_size, sequence), "processes": processes}
            fit = MemoryFit(rung.checkpointing, rung.state_offload, rung.batch_size, accumulation, estimate, resident)
            skipped = ("checkpointing off not tried: this job ran out of GPU memory without it; "
                       if env.out_of_memory_without_checkpointing and params.auto_gradient_checkpointing else "")
            cpu = ("; on a CPU, training without recomputation measured faster (docs/benchmarks.md)"
                   if not env.cuda and rung.checkpointing == "off" else "")
            return Choice(fit, (f"memory ({where}): " + skipped + "; ".join(tried) + cpu + _turn_off(params, rung),),
                          _warnings(params, rung, accumulation))
    qlora = None
    if method == "full" and env.cuda:
        rung = Rung(kind, False, 1)
        qlora = _size(params, shape, backend, "qlora-4bit", weights_dtype, autocast, None, sequence, optimizer, liger, rung)
    return Choice(unsized, errors=(_refusal(params, env, shape, method, sequence, budget, host_budget,
                                            dict(estimate, host=dict(estimate["host"],
                                                                     total=_host_needed(estimate, processes))),
                                            tried[-1], qlora),))


def resident_state_gib(estimate: dict, budget: float) -> float:
    """The part of an offloaded optimizer state that the GPU's headroom holds, in steps of RESIDENT_STATE_STEP_GIB:
    what stays there never crosses the host link."""
    room = budget - estimate["total"] - RESIDENT_STATE_SLACK_GIB
    steps = int(max(0.0, min(room, estimate["host"]["optimizer_states"])) / RESIDENT_STATE_STEP_GIB)
    return steps * RESIDENT_STATE_STEP_GIB


def _with_resident_state(estimate: dict, resident: float) -> dict:
    if not resident:
        return estimate
    host = dict(estimate["host"], optimizer_states=round(estimate["host"]["optimizer_states"] - resident, 2),
                total=round(estimate["host"]["total"] - resident, 2))
    return dict(estimate, optimizer_states=round(estimate["optimizer_states"] + resident, 2),
                total=round(estimate["total"] + resident, 2), host=host)


def _turn_off(params: LLMTrainingParams, rung: Rung) -> str:
    notes = []
    if rung.checkpointing == "off" and not params.disable_gradient_checkpointing:
        notes.append("--no-auto-gradient-checkpointing keeps checkpointing on")
    if rung.state_offload and params.optimizer_state_offload is None:
        notes.append("--no-optimizer-state-offload keeps the state on the GPU")
    if rung.batch_size != params.batch_size:
        notes.append("--no-auto-micro-batch keeps the micro-batch as given")
    return (" (" + "; ".join(notes) + ")") if notes else ""


def _warnings(params: LLMTrainingParams, rung: Rung, accumulation: int) -> tuple[str, ...]:
    if rung.batch_size == params.batch_size:
        return ()
    return (f"batch_size={params.batch_size} x gradient_accumulation={params.gradient_accumulation} does not fit in "
            f"memory: training with micro-batches of {rung.batch_size} x gradient_accumulation={accumulation}, the same "
            f"{params.batch_size * params.gradient_accumulation} rows per optimizer step.",)


def _refusal(params: LLMTrainingParams, env: Environment, shape: ModelShape, method: Method, sequence: int, budget: float,
             host_budget: Optional[float], estimate: dict, smallest: str, qlora: Optional[dict]) -> str:
    settings = smallest.split(": ", 1)[0]
    if env.cuda:
        needed = f"{estimate['total']} GiB on the GPU" + (
            f" and {estimate['host']['total']} GiB of host memory" if estimate["host"]["total"] else "")
        has = (f"this GPU ({env.gpu_name or 'CUDA'}) has {env.gpu_memory_gib} GiB (budget {budget})"
               + (f" and the host {env.host_memory_gib} GiB available (budget {host_budget})" if host_budget else ""))
    else:
        needed, has = f"{estimate['total']} GiB", f"this host has {env.host_memory_gib} GiB available (budget {budget})"
    hint = []
    if method == "full" and env.cuda:
        hint.append("QLoRA (--peft --quantization int4" + (f", about {qlora['total']} GiB" if qlora else "") + ")")
    elif method == "full":
        hint.append("LoRA (--peft)")
    if OPTIMIZER_STATE_BYTES.get(params.optimizer, 8) > 2:
        hint.append("an 8-bit optimizer (--optimizer adamw_8bit)")
    if sequence > 512:
        hint.append(f"a shorter --block-size than {sequence}")
    hint.append("a GPU with more memory" if env.cuda else "a GPU")
    shown = {"full": "full fine-tuning", "lora": "LoRA", "qlora-4bit": "QLoRA", "lora-8bit": "8-bit LoRA"}[method]
    return (f"{shown} of this {shape.parameters / 1e9:.1f}B-parameter model does not fit: with every memory "
            f"saving ({settings}) it needs {needed}, and {has}; what would fit: {', or '.join(hint)}. "
            "Nothing was loaded.")


def needs_bitsandbytes(name: str) -> bool:
    """transformers' optim names that build a bitsandbytes optimizer (8-bit, paged, Lion, AdEMAMix, RMSprop-bnb)."""
    return ("bnb" in name or name.startswith(("paged_", "lion", "ademamix")) or name in ("adamw_8bit", "rmsprop_8bit",
                                                                                         "rmsprop_32bit"))


OPTIMIZER_SHOWN = {"adamw_8bit": "8-bit AdamW (bitsandbytes)", "adamw_bnb_8bit": "8-bit AdamW (bitsandbytes)",
                   "paged_adamw_8bit": "8-bit AdamW (bitsandbytes, paged)", "adamw_torch_8bit": "8-bit AdamW (torchao)",
                   "adamw_torch": "AdamW (fp32 state)", "adamw_torch_fused": "AdamW (fp32 state, fused)",
                   "paged_adamw_32bit": "AdamW (fp32 state, bitsandbytes, paged)"}


def update_summary(method: str, weights_dtype: str, autocast: str, optimizer: str, state_offload: bool,
                   resident_state_gib: float = 0.0, fp8_linears: Optional[tuple[str, ...]] = None) -> str:
    """The math of one optimizer step, in words: what is trained, in which precision, and where the state lives."""
    compute = f", {autocast} compute" if autocast not in ("no", weights_dtype) else ""
    compute += f", FP8 matmuls in {', '.join(fp8_linears)}" if fp8_linears else ""
    if method == "full":
        trained = f"every weight in {weights_dtype}{compute}, {weights_dtype} gradients"
    else:
        base = {"qlora-4bit": "4-bit NF4", "lora-8bit": "8-bit"}.get(method, weights_dtype)
        trained = f"LoRA adapters in fp32 on a frozen {base} base{compute}"
    where = ("in pinned host memory" + (f" ({resident_state_gib} GiB of it on the GPU)" if resident_state_gib else "")
             + ", stepped on the GPU a chunk at a time" if state_offload else "on the training device")
    return f"{trained}; {OPTIMIZER_SHOWN.get(optimizer, optimizer)} state {where}"
