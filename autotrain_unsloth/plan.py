"""What will run, and why: probe the environment, then decide.

`probe()` looks at the machine and the model without loading weights or importing Unsloth.
`decide()` is a pure function of (params, environment) -> Plan. Every later step (launch, load, train,
save) follows the Plan and never decides again. The Plan is shown and saved as plan.json before any
weights load.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import os
from dataclasses import dataclass, field
from typing import Literal, Optional

from autotrain_unsloth.attention import torch_varlen_support
from autotrain_unsloth.memory import ModelShape, training_peak_gib
from autotrain_unsloth.params import LLMTrainingParams

UNSLOTH_ARCHITECTURES = ("llama", "mistral", "gemma", "qwen2")
UNSLOTH_TRAINERS = ("default", "sft")
# Architectures whose transformers classes restart attention where position_ids restart, so that a padding-free
# packed row keeps its examples apart with sdpa and eager attention too (tests/test_packing.py).
PACKING_ARCHITECTURES = ("llama", "mistral", "gemma", "qwen2", "phi3", "gpt2")

_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# "all-linear" spelled out per architecture: every linear layer of the decoder blocks, never lm_head.
ALL_LINEAR_TARGETS = {
    "llama": _PROJECTIONS, "mistral": _PROJECTIONS, "gemma": _PROJECTIONS, "gemma2": _PROJECTIONS,
    "qwen2": _PROJECTIONS, "qwen3": _PROJECTIONS, "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
}

Backend = Literal["unsloth", "transformers"]
Method = Literal["full", "lora", "qlora-4bit", "lora-8bit"]
Dtype = Literal["bf16", "fp16", "fp32"]
TORCH_DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}

# Automatic settings may plan for this share of the GPU's memory (the estimate itself already errs high).
AUTO_MEMORY_SHARE = 0.85


class PlanError(ValueError):
    """The settings cannot run on this machine; the message says what to change."""


@dataclass(frozen=True)
class Environment:
    """What the machine and the model are, as far as the decision needs to know."""

    unsloth_version: Optional[str] = None  # None: not installed
    bitsandbytes_installed: bool = False
    cuda: bool = False
    bf16: bool = False
    gpu_count: int = 0
    gpu_name: Optional[str] = None
    gpu_memory_gib: Optional[float] = None  # total memory of one GPU
    torchao_version: Optional[str] = None  # None: not installed
    model_type: Optional[str] = None
    model_shape: Optional[dict] = None  # memory.ModelShape as a dict; None when config.json lacks the keys
    unsloth_load_error: Optional[str] = None  # set when a job found that Unsloth cannot load this model
    out_of_memory_without_checkpointing: bool = False  # set when a job ran out of memory with it auto-off
    torch_varlen: Optional[str] = None  # attention.torch_varlen_support(): "gqa", "no-gqa" or None
    flash_attn_installed: bool = False


@dataclass(frozen=True)
class Plan:
    """The decision: what was asked, what will run, and why."""

    asked: dict
    backend: Backend
    method: Method
    trainer: str
    weights_dtype: Dtype  # dtype of the (non-quantized) weights as loaded
    autocast: Literal["bf16", "fp16", "no"]  # mixed-precision compute during training
    lora_target_modules: Optional[tuple[str, ...]]  # None for full fine-tuning; ("all-linear",) left to PEFT
    gradient_checkpointing: Literal["unsloth", "on", "off"]
    packing: bool  # sft: several examples per sequence
    optimizer: str  # the Trainer's optim: as asked, or adamw_8bit run as torchao's (adamw_torch_8bit)
    device: Literal["cuda", "cpu"]
    num_processes: int
    model_type: Optional[str]
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    params_fingerprint: str
    memory_estimate_gib: Optional[dict] = None  # estimated peak by part, for the planned checkpointing
    # The attention kernel for padding-free (packed) rows; None when batches are not packed.
    packed_attention: Optional[Literal["unsloth", "torch-varlen-in-unsloth", "sdpa-no-cudnn", "torch-varlen",
                                       "sdpa-mask", "flash_attention_2"]] = None
    environment: dict = field(default_factory=dict)
    verified: Optional[dict] = None  # filled in by the job after the model has loaded

    @property
    def quantization(self) -> Optional[str]:
        return {"qlora-4bit": "int4", "lora-8bit": "int8"}.get(self.method)

    @property
    def peft(self) -> bool:
        return self.method != "full"

    def probed_environment(self) -> "Environment":
        """The environment this plan was decided for (to decide again without probing)."""
        return Environment(**self.environment)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        data = dict(data)
        for key in ("reasons", "warnings"):
            data[key] = tuple(data[key])
        if data["lora_target_modules"] is not None:
            data["lora_target_modules"] = tuple(data["lora_target_modules"])
        return cls(**data)

    def save(self, project_dir: str) -> str:
        os.makedirs(project_dir, exist_ok=True)
        path = os.path.join(project_dir, "plan.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str) -> "Plan":
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def render(self) -> str:
        """A table for people: asked vs will run, then why, then warnings."""
        a = self.asked
        asked_method = ("full fine-tuning" if a["full_finetuning"] or not a["peft"]
                        else f"LoRA r={a['lora_r']}" + (f" + {a['quantization']}" if a["quantization"] else ""))
        will_method = {"full": "full fine-tuning (all weights)", "lora": f"LoRA r={a['lora_r']} (16-bit base)",
                       "qlora-4bit": f"QLoRA r={a['lora_r']} (4-bit base)", "lora-8bit": f"LoRA r={a['lora_r']} (8-bit base)"}[self.method]
        asked_checkpointing = ("off" if a["disable_gradient_checkpointing"]
                               else "auto" if a.get("auto_gradient_checkpointing") else "on")
        estimated = f" (estimated peak {self.memory_estimate_gib['total']} GiB)" if self.memory_estimate_gib else ""
        rows = [
            ("backend", "unsloth" if a["unsloth"] else "transformers", self.backend),
            ("method", asked_method, will_method),
            ("trainer", a["trainer"], self.trainer),
            ("precision", f"mixed_precision={a['mixed_precision']}", f"{self.weights_dtype} weights, autocast {self.autocast}"),
            ("LoRA targets", a["target_modules"] if self.peft else "-", ",".join(self.lora_target_modules) if self.lora_target_modules else "-"),
            ("grad. checkpointing", asked_checkpointing, self.gradient_checkpointing + estimated),
            ("packing", {None: "auto", True: "on", False: "off"}[a.get("packing")] if self.trainer == "sft" else "",
             ("on" if self.packing else "off") if self.trainer == "sft" else "- (blocks)"),
            ("packed attention", "", self.packed_attention or "-"),
            ("optimizer", a["optimizer"], self.optimizer),
            ("device", "", f"{self.device} x{max(self.num_processes, 1)}" + (f" ({self.environment.get('gpu_name')})" if self.device == "cuda" else "")),
        ]
        width = [max(len(r[i]) for r in rows + [("", "asked", "will run")]) for i in range(3)]
        lines = [f"Plan for model {a['model']} (model_type: {self.model_type or 'unknown'})",
                 f"  {'':<{width[0]}}  {'asked':<{width[1]}}  will run"]
        lines += [f"  {name:<{width[0]}}  {asked:<{width[1]}}  {will}" for name, asked, will in rows]
        lines += ["Why:"] + [f"  - {reason}" for reason in self.reasons]
        if self.warnings:
            lines += ["Warnings:"] + [f"  ! {warning}" for warning in self.warnings]
        if self.verified:
            lines += ["Verified after load:"] + [f"  {key}: {value}" for key, value in self.verified.items()]
        return "\n".join(lines)


def params_fingerprint(params: LLMTrainingParams) -> str:
    """Identifies the settings a plan was made for (the token is never part of it)."""
    return hashlib.sha256(json.dumps(params.public_dict(), sort_keys=True).encode()).hexdigest()[:16]


def decide(params: LLMTrainingParams, env: Environment) -> Plan:
    """The pure decision. Raises PlanError, listing every problem, when the settings cannot run here."""
    reasons: list[str] = []
    warnings: list[str] = list(params.setting_warnings())
    errors: list[str] = []

    # -- backend ---------------------------------------------------------------------------------------
    if params.unsloth:
        blockers = []
        if env.unsloth_version is None:
            blockers.append("unsloth is not installed (pip install 'autotrain-unsloth[unsloth]')")
        if not env.cuda:
            blockers.append("no CUDA GPU was found (Unsloth's kernels need one)")
        if params.trainer not in UNSLOTH_TRAINERS:
            blockers.append(f"trainer {params.trainer!r} is not supported by Unsloth here (supported: {', '.join(UNSLOTH_TRAINERS)})")
        if env.model_type not in UNSLOTH_ARCHITECTURES:
            blockers.append(f"model_type {env.model_type!r} is not on Unsloth's fast path (supported: {', '.join(UNSLOTH_ARCHITECTURES)})")
        if env.unsloth_load_error:
            blockers.append(f"Unsloth failed to load the model ({env.unsloth_load_error})")
        if blockers:
            backend: Backend = "transformers"
            warnings.append("Unsloth was asked for but will not run: " + "; ".join(blockers) + ". Training with transformers + PEFT instead.")
            reasons.append("backend transformers: " + "; ".join(blockers))
        else:
            backend = "unsloth"
            reasons.append(f"backend unsloth {env.unsloth_version}: asked, installed, CUDA GPU present, trainer "
                           f"{params.trainer!r} and model_type {env.model_type!r} supported")
    else:
        backend = "transformers"
        reasons.append("backend transformers: unsloth not asked (--unsloth to use it)")

    # -- method ----------------------------------------------------------------------------------------
    method: Method
    if params.full_finetuning or not params.peft:
        method = "full"
        reasons.append("method full: " + ("full_finetuning=True" if params.full_finetuning else "peft=False")
                       + "; every parameter is trained" + (" (Unsloth full_finetuning=True)" if backend == "unsloth" else ""))
    elif params.quantization is None:
        method = "lora"
        reasons.append("method lora: peft=True, quantization none: 16-bit base weights")
    elif not env.cuda:
        method = "lora"
        warnings.append(f"quantization={params.quantization!r} needs a CUDA GPU (bitsandbytes); none found, so the base "
                        "weights stay unquantized (plain LoRA).")
        reasons.append(f"method lora: quantization {params.quantization} dropped, no CUDA GPU")
    elif not env.bitsandbytes_installed:
        errors.append(f"quantization={params.quantization!r} needs bitsandbytes, which is not installed: "
                      "pip install bitsandbytes, or pass --quantization none for 16-bit LoRA.")
        method = "lora"
    else:
        method = "qlora-4bit" if params.quantization == "int4" else "lora-8bit"
        reasons.append(f"method {method}: peft=True, quantization {params.quantization}, CUDA GPU and bitsandbytes present")

    # -- precision -------------------------------------------------------------------------------------
    weights_dtype, autocast, why = _precision(params, env, backend, method, warnings)
    reasons.append(why)

    # -- LoRA targets ----------------------------------------------------------------------------------
    targets: Optional[tuple[str, ...]] = None
    if method != "full":
        asked_targets = params.target_modules or "all-linear"
        if asked_targets.strip() == "all-linear":
            if env.model_type in ALL_LINEAR_TARGETS:
                targets = ALL_LINEAR_TARGETS[env.model_type]
                reasons.append(f"LoRA targets: all-linear for {env.model_type} = {', '.join(targets)}")
            elif backend == "unsloth":
                errors.append(f"target_modules='all-linear' has no known expansion for model_type {env.model_type!r}; "
                              "list the modules (--target-modules q_proj,v_proj,...)")
            else:
                targets = ("all-linear",)
                reasons.append(f"LoRA targets: all-linear, resolved by PEFT for model_type {env.model_type!r}")
        else:
            targets = tuple(name.strip() for name in asked_targets.split(",") if name.strip())

    if backend == "unsloth" and method != "full" and params.lora_dropout > 0:
        warnings.append(f"lora_dropout={params.lora_dropout} turns off part of Unsloth's fused LoRA kernels (slower); "
                        "--lora-dropout 0 for full speed.")

    if backend == "unsloth" and params.use_flash_attention_2:
        warnings.append("use_flash_attention_2 not used on the Unsloth path: Unsloth chooses its own attention kernels.")
    if params.push_to_hub:
        warnings.append(f"push_to_hub=True: uploading is not implemented yet; the result stays in {params.project_name}/ "
                        f"(upload it with `hf upload {params.username}/{params.project_name} {params.project_name}`).")

    # -- gradient checkpointing ------------------------------------------------------------------------
    checkpointing_kind = "unsloth" if backend == "unsloth" else "on"
    memory_estimate = None
    if params.disable_gradient_checkpointing:
        checkpointing = "off"
        reasons.append("gradient checkpointing off: disable_gradient_checkpointing=True")
    else:
        checkpointing, why, memory_estimate = _auto_checkpointing(params, env, backend, method, weights_dtype, autocast,
                                                                  targets, checkpointing_kind)
        reasons.append(why)

    # -- packing (sft) and the attention for packed rows ----------------------------------------------------
    packing, why, error = _packing(params, env, backend)
    if why:
        reasons.append(why)
    if error:
        errors.append(error)
    packed_attention, why = _packed_attention(params, env, backend, packing, weights_dtype, autocast)
    if why:
        reasons.append(why)

    # -- optimizer (automatic speed-up) ---------------------------------------------------------------
    optimizer, why = _auto_optimizer(params, env, method)
    reasons.append(why)

    # -- devices ---------------------------------------------------------------------------------------
    if not env.cuda:
        device, processes = "cpu", 0
        if params.use_flash_attention_2:
            warnings.append("use_flash_attention_2 needs a CUDA GPU; using the default attention on CPU.")
        if params.distributed_backend:
            warnings.append(f"distributed_backend={params.distributed_backend!r} not used: training on one CPU process.")
    elif backend == "unsloth" and env.gpu_count > 1:
        device, processes = "cuda", 1
        warnings.append(f"{env.gpu_count} GPUs found; the Unsloth path trains on one (set CUDA_VISIBLE_DEVICES to choose "
                        "it, or drop --unsloth for multi-GPU transformers training).")
    else:
        device, processes = "cuda", env.gpu_count
        if processes > 1 and params.distributed_backend == "deepspeed" and method in ("qlora-4bit", "lora-8bit"):
            errors.append("quantized LoRA with deepspeed ZeRO-3 is not supported; use distributed_backend=ddp or --quantization none.")

    if errors:
        raise PlanError("these settings cannot run here:\n  - " + "\n  - ".join(errors))

    return Plan(
        asked={key: getattr(params, key) for key in (
            "model", "unsloth", "peft", "full_finetuning", "quantization", "mixed_precision", "trainer",
            "target_modules", "lora_r", "disable_gradient_checkpointing", "auto_gradient_checkpointing", "optimizer",
            "auto_optimizer", "packing", "auto_packed_attention")},
        backend=backend, method=method, trainer=params.trainer, weights_dtype=weights_dtype, autocast=autocast,
        lora_target_modules=targets, gradient_checkpointing=checkpointing, packing=packing, device=device, num_processes=processes,
        model_type=env.model_type, reasons=tuple(reasons), warnings=tuple(warnings),
        params_fingerprint=params_fingerprint(params), memory_estimate_gib=memory_estimate, optimizer=optimizer,
        environment=dataclasses.asdict(env), packed_attention=packed_attention,
    )


def _packing(params, env, backend) -> tuple[bool, Optional[str], Optional[str]]:
    """(packing, reason, error) for sft: several examples laid end to end in a row without padding, kept
    apart by the attention, instead of each example padded to the longest of its batch."""
    if params.trainer != "sft":
        return False, None, None
    if params.packing is False:
        return False, "sft packing off: packing=False; each example is padded to the longest of its batch", None
    if backend == "unsloth":
        return True, ("sft packing on: examples laid end to end without padding; Unsloth's attention keeps them "
                      "apart (it refuses packing for models without variable-length support)"), None
    if env.model_type in PACKING_ARCHITECTURES or (env.cuda and params.use_flash_attention_2):
        return True, (f"sft packing on: examples laid end to end without padding; model_type {env.model_type!r} "
                      "restarts attention where position_ids restart, so they stay apart"), None
    if params.packing:
        return False, None, (f"packing=True: model_type {env.model_type!r} is not known to keep packed examples apart "
                             f"(known: {', '.join(PACKING_ARCHITECTURES)}); pass --no-packing, or "
                             "--use-flash-attention-2 on a GPU")
    return False, (f"sft packing off: model_type {env.model_type!r} is not known to keep packed examples apart; each "
                   "example is padded instead"), None


def _packed_attention(params, env, backend, packing, weights_dtype, autocast) -> tuple[Optional[str], Optional[str]]:
    """(kernel, reason) for padding-free rows. Unsloth lays every sft batch out padding-free, packing or not."""
    if not (packing or (backend == "unsloth" and params.trainer == "sft")):
        return None, None
    if backend == "unsloth":
        own = "packed attention: Unsloth's own dispatch"
        if env.flash_attn_installed:
            return "unsloth", own + " (flash-attn 2 is installed: its variable-length kernel)"
        if env.torch_varlen == "gqa":
            return "unsloth", own + " (torch's varlen_attn takes enable_gqa here, and Unsloth uses it)"
        if not params.auto_packed_attention:
            return "unsloth", own + " (auto_packed_attention=False)"
        if env.torch_varlen == "no-gqa":
            return "torch-varlen-in-unsloth", (
                "packed attention: torch's varlen_attn under Unsloth's dispatch (automatic, faster: Unsloth takes it "
                "only from torch 2.12, and otherwise runs one SDPA call per document length, each planned anew by "
                "cuDNN; docs/benchmarks.md); checked against Unsloth's per-document SDPA when the model loads, with "
                "cuDNN's SDPA turned off instead if they disagree; --no-auto-packed-attention keeps Unsloth's")
        return "sdpa-no-cudnn", ("packed attention: Unsloth's per-document SDPA with cuDNN's SDPA off (automatic, "
                                 "faster: cuDNN plans every new document length anew; this torch has no varlen_attn); "
                                 "--no-auto-packed-attention keeps cuDNN")
    if env.cuda and params.use_flash_attention_2:
        return "flash_attention_2", "packed attention: flash attention 2 (use_flash_attention_2=True)"
    blockers = [why for blocked, why in (
        (not params.auto_packed_attention, "auto_packed_attention=False"), (not env.cuda, "no CUDA GPU"),
        (env.torch_varlen is None, "this torch has no varlen_attn"),
        (weights_dtype == "fp32" and autocast == "no", "fp32 compute (the varlen kernel takes 16-bit)")) if blocked]
    if blockers:
        return "sdpa-mask", ("packed attention: sdpa with transformers' block-diagonal mask from position_ids ("
                             + "; ".join(blockers) + ")")
    return "torch-varlen", ("packed attention: torch's varlen_attn (automatic, faster: each example's causal triangle "
                            "alone, instead of sdpa over the row's whole square under a block-diagonal mask); "
                            "--no-auto-packed-attention keeps sdpa")


def sequence_tokens_bound(params: LLMTrainingParams) -> int:
    """Most tokens one sequence can hold: block_size, or 1024 for -1 (the tokenizer's maximum capped at 1024)."""
    return params.block_size_int if params.block_size_int > 0 else 1024


def _auto_checkpointing(params, env, backend, method, weights_dtype, autocast, targets, kind) -> tuple[str, str, Optional[dict]]:
    """(checkpointing, reason, memory estimate): off when training is estimated to fit without it, since
    recomputing every layer's forward pass costs about a third of the step; else `kind`."""
    named = {"unsloth": "'unsloth' (activations offloaded to CPU memory)", "on": "on"}[kind]
    if not params.auto_gradient_checkpointing:
        return kind, f"gradient checkpointing {named}: auto_gradient_checkpointing=False", None
    if env.out_of_memory_without_checkpointing:
        return kind, f"gradient checkpointing {named}: this job ran out of GPU memory without it", None
    shape = ModelShape(**env.model_shape) if env.model_shape else None
    if not (env.cuda and env.gpu_memory_gib and shape):
        missing = "no CUDA GPU" if not env.cuda else "the GPU's memory is unknown" if not env.gpu_memory_gib else (
            f"the model's size could not be read from its config.json (model_type {env.model_type!r})")
        return kind, f"gradient checkpointing {named}: not sized automatically, {missing}", None
    sequence = sequence_tokens_bound(params)
    tokens = params.batch_size * sequence
    estimate = training_peak_gib(
        shape, method=method, weights_dtype=weights_dtype, compute_dtype=autocast if autocast != "no" else weights_dtype,
        tokens=tokens, optimizer=params.optimizer, lora_rank=params.lora_r, lora_targets=targets,
        lora_dropout=params.lora_dropout > 0, checkpointing=False, backend=backend)
    budget = round(AUTO_MEMORY_SHARE * env.gpu_memory_gib, 2)
    estimate = {**estimate, "budget": budget, "gpu": env.gpu_memory_gib}
    sized = (f"estimated peak without it {estimate['total']} GiB for {params.batch_size} x {sequence} tokens, "
             f"budget {budget} GiB ({AUTO_MEMORY_SHARE:.0%} of {env.gpu_memory_gib} GiB)")
    if estimate["total"] <= budget:
        return "off", (f"gradient checkpointing off (automatic, faster: no recomputed forward pass): {sized}; "
                       "--no-auto-gradient-checkpointing keeps it on"), estimate
    return kind, f"gradient checkpointing {named}: {sized} does not fit", estimate


# torchao.optim (AdamW8bit's home) exists from this release on.
TORCHAO_OPTIM_SINCE = (0, 11)


def _auto_optimizer(params, env, method) -> tuple[str, str]:
    """(the Trainer's optim, reason). Full fine-tuning's adamw_8bit runs as torchao's AdamW8bit: the same
    block-wise 8-bit AdamW (dynamic quantization map, blocks of 256), compiled into fused kernels, where
    bitsandbytes' optimizer step took 27% of an 8B full fine-tuning step on an H100 (docs/benchmarks.md)."""
    asked = params.optimizer
    if asked != "adamw_8bit":
        return asked, f"optimizer {asked}: as asked"
    keep = "optimizer adamw_8bit (bitsandbytes): "
    if not params.auto_optimizer:
        return asked, keep + "auto_optimizer=False"
    if method != "full":
        return asked, keep + "LoRA trains few weights, so the optimizer step is a small part of each step"
    if not env.cuda:
        return asked, keep + "no CUDA GPU"
    if params.distributed_backend == "deepspeed":
        return asked, keep + "DeepSpeed builds its own optimizer"
    if not _version_at_least(env.torchao_version, TORCHAO_OPTIM_SINCE):
        return asked, keep + (f"torchao {env.torchao_version} is older than 0.11" if env.torchao_version
                              else "torchao is not installed") + " (torchao's AdamW8bit is faster for full fine-tuning)"
    return "adamw_torch_8bit", (
        "optimizer adamw_8bit runs as torchao's AdamW8bit (optim=adamw_torch_8bit, automatic, faster: the same "
        "block-wise 8-bit AdamW as bitsandbytes in compiled kernels; the update of every weight is a large part of "
        "a full fine-tuning step); --no-auto-optimizer keeps bitsandbytes")


def _version_at_least(version: Optional[str], minimum: tuple[int, ...]) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return version is not None and Version(version).release[:len(minimum)] >= minimum
    except InvalidVersion:  # "unknown": installed without metadata
        return False


def _precision(params, env, backend, method, warnings) -> tuple[Dtype, str, str]:
    """(weights dtype, autocast, reason)."""
    asked = params.mixed_precision
    if not env.cuda:
        if asked:
            warnings.append(f"mixed_precision={asked!r} needs a CUDA GPU; training in fp32 on CPU.")
        return "fp32", "no", "precision fp32: CPU"
    if asked == "bf16" and not env.bf16:
        warnings.append(f"mixed_precision='bf16' is not supported by {env.gpu_name}; using fp16.")
        asked = "fp16"
    why = f"mixed_precision={asked}"
    if asked is None:
        if backend != "unsloth":
            return "fp32", "no", "precision fp32: mixed_precision not set" + (
                " (--mixed-precision bf16 is faster on this GPU)" if env.bf16 else "")
        asked = "bf16" if env.bf16 else "fp16"
        why = f"mixed_precision not set; Unsloth trains in 16-bit and {asked} is the best this GPU supports"
    if asked == "fp16" and method == "full":
        # The gradient scaler cannot step fp16 weights: keep fp32 master weights under fp16 autocast.
        return "fp32", "fp16", f"precision fp32 weights, fp16 autocast ({why}): full fine-tuning cannot update fp16 weights"
    if asked == "bf16" and method == "full" and backend == "unsloth":
        return "bf16", "no", (f"precision bf16 weights, no autocast ({why}): Unsloth's pure-bf16 full fine-tuning "
                              "(norm weights kept in fp32)")
    return asked, asked, f"precision {asked}: {why}"


def probe(params: LLMTrainingParams) -> Environment:
    """Look at the machine and the model's config, without loading weights or importing Unsloth."""
    import torch

    cuda = torch.cuda.is_available()
    config = read_model_config(params.model, params.token)
    return Environment(
        unsloth_version=_installed_version("unsloth"),
        bitsandbytes_installed=importlib.util.find_spec("bitsandbytes") is not None,
        cuda=cuda,
        bf16=bool(cuda and torch.cuda.is_bf16_supported()),
        gpu_count=torch.cuda.device_count() if cuda else 0,
        gpu_name=torch.cuda.get_device_name(0) if cuda else None,
        gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 2) if cuda else None,
        torchao_version=_installed_version("torchao"),
        torch_varlen=torch_varlen_support(),
        flash_attn_installed=importlib.util.find_spec("flash_attn") is not None,
        model_type=config["model_type"],
        model_shape=shape.to_dict() if (shape := ModelShape.from_config(config)) else None,
    )


def read_model_config(model: str, token: Optional[str] = None) -> dict:
    """The model's config.json, with a model_type: a local folder, or the Hub (cache first when offline)."""
    if os.path.isdir(model):
        path = os.path.join(model, "config.json")
        if not os.path.isfile(path):
            raise PlanError(f"model {model!r}: the folder has no config.json; point --model at a saved "
                            "transformers model folder or a Hub id")
    elif os.path.exists(model) or model.startswith((".", "/", "~")):
        raise PlanError(f"model {model!r} is not a folder; point --model at a saved transformers model folder or a Hub id")
    else:
        from huggingface_hub import hf_hub_download

        try:
            path = hf_hub_download(model, "config.json", token=token)
        except Exception as exc:  # offline, unknown repo, gated: all mean the model can't be read
            raise PlanError(f"model {model!r}: could not read its config.json from the Hub or the cache "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    with open(path) as f:
        config = json.load(f)
    if not isinstance(config, dict) or not config.get("model_type"):
        raise PlanError(f"model {model!r}: config.json has no model_type")
    return config


def _installed_version(distribution: str) -> Optional[str]:
    if importlib.util.find_spec(distribution) is None:
        return None
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def make_plan(params: LLMTrainingParams, env: Optional[Environment] = None) -> Plan:
    """probe + decide, for the entry points."""
    return decide(params, env or probe(params))
