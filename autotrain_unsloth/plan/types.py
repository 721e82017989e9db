"""The plan's types: the environment it is decided for, what was asked, the decision, and one rule's choice.
A Plan is saved as plan.json before any weights load and read back by the job."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from autotrain_unsloth.errors import UserError
from autotrain_unsloth.params import LLMTrainingParams

Backend = Literal["unsloth", "transformers"]
Method = Literal["full", "lora", "qlora-4bit", "lora-8bit"]
Dtype = Literal["bf16", "fp16", "fp32"]
TORCH_DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
# How tokens a chat template adds get trained: their rows only (PEFT trainable_token_indices), the embedding and
# output matrices in full (Unsloth's modules_to_save), or with every weight (full fine-tuning).
NewTokens = Literal["rows", "embeddings", "full"]
PackedAttention = Literal["unsloth", "torch-varlen-in-unsloth", "sdpa-no-cudnn", "torch-varlen", "sdpa-mask",
                          "flash_attention_2"]


class PlanError(UserError, ValueError):
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
    gpu_capability: Optional[str] = None  # CUDA compute capability, "9.0"
    gpu_memory_gib: Optional[float] = None  # total memory of one GPU
    host_memory_gib: Optional[float] = None  # the host's available memory (MemAvailable) when the plan was made
    disk_free_gib: Optional[float] = None  # free space on the disk the project folder is written to
    offload_variable: Optional[bool] = None  # UNSLOTH_OFFLOAD_OPTIMIZER_STATE as set in the environment; None: unset
    torchao_version: Optional[str] = None  # None: not installed
    model_type: Optional[str] = None
    rope_type: str = "default"  # the rotary scaling of config.json (GGUF export writes some of them)
    model_shape: Optional[dict] = None  # memory.ModelShape as a dict; None when config.json lacks the keys
    tokenizer_max_length: Optional[int] = None  # the tokenizer's own limit; None when unknown or unbounded
    template_tokens_missing: Optional[tuple[str, ...]] = ()  # the chat template's tokens the tokenizer lacks; None: unknown
    unsloth_load_error: Optional[str] = None  # set when a job found that Unsloth cannot load this model
    out_of_memory_without_checkpointing: bool = False  # set when a job ran out of memory with it auto-off
    torch_varlen: Optional[str] = None  # attention.torch_varlen_support(): "gqa", "no-gqa" or None
    flash_attn_installed: bool = False
    deepspeed_installed: bool = False
    checkpoint: Optional[dict] = None  # probe.resume_candidate: the checkpoint to resume from, if any
    gguf_installed: bool = False
    gguf_pre_tokenizer: Optional[str] = None  # export_gguf: llama.cpp's name for the tokenizer's pre-tokenizer
    gguf_tokenizer_refused: Optional[str] = None  # export_gguf: why llama.cpp would split the text differently
    liger_installed: bool = False
    hub_token_found: bool = False  # push_to_hub: a token in the settings, HF_TOKEN or the login cache
    project_finished: bool = False  # the project folder holds a finished run (run_summary.json)
    data_notes: tuple[str, ...] = ()  # what data preparation decided about the columns (shown as warnings)
    # the training split as the job will see it (data/prepare/counts.py): rows, tokens, sequences, for a sequence length
    data_counts: Optional[dict] = None


@dataclass(frozen=True)
class Asked:
    """The settings the decision reads, as given (shown in the plan's "asked" column)."""

    model: str
    unsloth: bool
    peft: bool
    full_finetuning: bool
    quantization: Optional[str]
    mixed_precision: Optional[str]
    trainer: str
    target_modules: Optional[str]
    lora_r: int
    disable_gradient_checkpointing: bool
    resume_from_checkpoint: Optional[str]
    chat_template: Optional[str]
    response_only_loss: bool
    auto_gradient_checkpointing: bool
    optimizer: str
    auto_optimizer: bool
    packing: Optional[bool]
    auto_packed_attention: bool
    use_liger_kernel: Optional[bool]
    block_size: int
    distributed_backend: Optional[str]
    batch_size: int = 2
    gradient_accumulation: int = 4
    optimizer_state_offload: Optional[bool] = None
    fp8: bool = False

    @classmethod
    def of(cls, params: LLMTrainingParams) -> "Asked":
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{name: getattr(params, name) for name in names if name != "block_size"},
                   block_size=params.block_size_int)


@dataclass(frozen=True)
class Plan:
    """The decision: what was asked, what will run, and why."""

    asked: Asked
    backend: Backend
    method: Method
    trainer: str
    weights_dtype: Dtype  # dtype of the (non-quantized) weights as loaded
    autocast: Literal["bf16", "fp16", "no"]  # mixed-precision compute during training
    lora_target_modules: Optional[tuple[str, ...]]  # None for full fine-tuning; ("all-linear",) left to PEFT
    gradient_checkpointing: Literal["unsloth", "on", "off"]
    packing: bool  # sft: several examples per row
    optimizer: str  # the Trainer's optim: as asked, or adamw_8bit run as torchao's (adamw_torch_8bit)
    sequence_length: int  # tokens per training sequence: the block size, or the packed row's bin
    eval_strategy: str  # "no" without a validation split
    save_strategy: str
    device: Literal["cuda", "cpu"]
    num_processes: int
    model_type: Optional[str]
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    params_fingerprint: str
    memory_estimate_gib: Optional[dict] = None  # fit.py: the chosen settings' estimated peak by part, budgets, host
    optimizer_state_offload: bool = False  # the optimizer state lives in pinned host memory between steps
    optimizer_state_resident_gib: float = 0.0  # ... except this much of it, which stays on the GPU
    # the micro-batch per device and the accumulation: as asked, lowered to make enough steps on the data where
    # left at their defaults (schedule.py), and the micro-batch smaller still to fit memory (fit.py)
    batch_size: int = 1
    gradient_accumulation: int = 1
    update: str = ""  # the math of an optimizer step in words (fit.update_summary)
    packed_attention: Optional[PackedAttention] = None  # the kernel for padding-free rows; None: not packed
    new_tokens: Optional[NewTokens] = None  # None: the chat template adds no token
    liger: bool = False  # Liger's kernels patched into the model by the Trainer (transformers path)
    # the decoder layers' linear layers whose matmuls run in FP8 (torchao float8 training), by name; None: none
    fp8_linears: Optional[tuple[str, ...]] = None
    resume_from: Optional[str] = None  # the checkpoint folder training resumes from; None: step 0
    environment: dict = field(default_factory=dict)
    verified: Optional[dict] = None  # filled in by the job after the model has loaded
    steps: Optional[dict] = None  # the data's counts and the optimizer steps they make; None: not counted

    @property
    def quantization(self) -> Optional[str]:
        return {"qlora-4bit": "int4", "lora-8bit": "int8"}.get(self.method)

    @property
    def peft(self) -> bool:
        return self.method != "full"

    def probed_environment(self) -> Environment:
        """The environment this plan was decided for (to decide again without probing)."""
        return Environment(**self.environment)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        data = dict(data)
        data["asked"] = Asked(**data["asked"])
        environment = data.get("environment") or {}
        if isinstance(environment.get("template_tokens_missing"), list):  # JSON has no tuples
            data["environment"] = {**environment, "template_tokens_missing": tuple(environment["template_tokens_missing"])}
        for key in ("reasons", "warnings"):
            data[key] = tuple(data[key])
        for key in ("lora_target_modules", "fp8_linears"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)

    def save(self, project_dir: str) -> str:
        """plan.json, written whole or not at all (a unique temporary name, then an atomic rename); by rank 0
        only when a launcher runs several processes (they all decide the same plan)."""
        from autotrain_unsloth.distributed import is_main

        path = os.path.join(project_dir, "plan.json")
        if not is_main():
            return path
        os.makedirs(project_dir, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str) -> "Plan":
        """A saved plan; PlanError when the file is not a plan of this version (the job then plans again)."""
        try:
            with open(path) as f:
                return cls.from_dict(json.load(f))
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise PlanError(f"{path} is not a plan this version can read ({type(exc).__name__}: {exc})") from exc

    def render(self) -> str:
        from autotrain_unsloth.plan.render import render

        return render(self)


@dataclass(frozen=True)
class Choice:
    """One rule's answer: its value, and the reasons, warnings and errors it gives for it."""

    value: Any
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


def chose(value: Any, reason: Optional[str] = None, *, warning: Optional[str] = None,
          error: Optional[str] = None) -> Choice:
    """A Choice with at most one reason, warning and error (the common case)."""
    return Choice(value, (reason,) if reason else (), (warning,) if warning else (), (error,) if error else ())
