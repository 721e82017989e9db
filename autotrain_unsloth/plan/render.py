"""The plan as a table for people: asked vs will run, then why, then warnings, then what was verified."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from autotrain_unsloth.plan.types import Plan

METHOD_SHOWN = {"full": "full fine-tuning (all weights)", "lora": "LoRA r={r} (16-bit base)",
                "qlora-4bit": "QLoRA r={r} (4-bit base)", "lora-8bit": "LoRA r={r} (8-bit base)"}


def render(plan: Plan) -> str:
    a = plan.asked
    asked_method = ("full fine-tuning" if a.full_finetuning or not a.peft
                    else f"LoRA r={a.lora_r}" + (f" + {a.quantization}" if a.quantization else ""))
    asked_checkpointing = "off" if a.disable_gradient_checkpointing else "auto" if a.auto_gradient_checkpointing else "on"
    estimate = plan.memory_estimate_gib
    estimated = f" (estimated peak {estimate['total']} GiB)" if estimate else ""
    host = estimate.get("host", {}).get("total") if estimate else None
    memory = (f"{estimate['total']} of {estimate['budget']} GiB budget" + (f"; host {host} GiB pinned" if host else "")
              if estimate else "not sized")
    sft = plan.trainer == "sft"
    gpu = f" ({plan.environment.get('gpu_name')})" if plan.device == "cuda" else ""
    rows = [
        ("backend", "unsloth" if a.unsloth else "transformers", plan.backend),
        ("method", asked_method, METHOD_SHOWN[plan.method].format(r=a.lora_r)),
        ("trainer", a.trainer, plan.trainer),
        ("precision", f"mixed_precision={a.mixed_precision}" + (", fp8" if a.fp8 else ""),
         f"{plan.weights_dtype} weights, autocast {plan.autocast}" + (", FP8 matmuls" if plan.fp8_linears else "")),
        ("LoRA targets", a.target_modules if plan.peft else "-", ",".join(plan.lora_target_modules or ()) or "-"),
        ("sequence length", f"block_size={a.block_size}", str(plan.sequence_length)),
        ("grad. checkpointing", asked_checkpointing, plan.gradient_checkpointing + estimated),
        ("packing", {None: "auto", True: "on", False: "off"}[a.packing] if sft else "",
         ("on" if plan.packing else "off") if sft else "- (blocks)"),
        ("packed attention", "", plan.packed_attention or "-"),
        ("Liger kernels", {None: "auto", True: "on", False: "off"}[a.use_liger_kernel], "on" if plan.liger else "off"),
        ("chat template", a.chat_template or "-", (a.chat_template or "-") + (
            f", added tokens trained: {plan.new_tokens}" if plan.new_tokens else "")
         + (", loss on the assistant's turns only" if a.response_only_loss else "")),
        ("optimizer", a.optimizer, plan.optimizer),
        ("batch x accum.", f"{a.batch_size} x {a.gradient_accumulation}",
         f"{plan.batch_size} x {plan.gradient_accumulation}"),
        ("data", "", counts_shown(plan.steps)),
        ("optimizer steps", "", f"{plan.steps['steps_per_epoch']} an epoch, {plan.steps['steps']} in all, "
         f"{plan.steps['warmup_steps']} warm-up" if plan.steps else "-"),
        ("optimizer state", {None: "auto", True: "host", False: "device"}[a.optimizer_state_offload],
         ("host (pinned), stepped in chunks" + (f", {plan.optimizer_state_resident_gib} GiB of it on the GPU"
                                                 if plan.optimizer_state_resident_gib else "")
          if plan.optimizer_state_offload else "device")),
        ("memory", "", memory),
        ("update", "", plan.update),
        ("eval / save", "", f"{plan.eval_strategy} / {plan.save_strategy}"),
        ("resume", a.resume_from_checkpoint or "none", plan.resume_from or "- (step 0)"),
        ("device", a.distributed_backend or "", f"{plan.device} x{max(plan.num_processes, 1)}{gpu}"
         + (" (DeepSpeed ZeRO-3)" if plan.num_processes > 1 and a.distributed_backend == "deepspeed"
            else " (DDP)" if plan.num_processes > 1 else "")),
    ]
    width = [max(len(str(r[i])) for r in rows + [("", "asked", "will run")]) for i in range(3)]
    lines = [f"Plan for model {a.model} (model_type: {plan.model_type or 'unknown'})",
             f"  {'':<{width[0]}}  {'asked':<{width[1]}}  will run"]
    lines += [f"  {name:<{width[0]}}  {str(asked):<{width[1]}}  {will}" for name, asked, will in rows]
    lines += ["Why:"] + [f"  - {reason}" for reason in plan.reasons]
    if plan.warnings:
        lines += ["Warnings:"] + [f"  ! {warning}" for warning in plan.warnings]
    if plan.verified:
        lines += ["Verified after load:"] + [f"  {key}: {value}" for key, value in plan.verified.items()]
    return "\n".join(lines)


def counts_shown(counts: Optional[dict]) -> str:
    """The plan table's cell for the counts."""
    if not counts:
        return "- (not counted)"
    tokens = f", {counts['tokens']:,} tokens" if counts.get("tokens") else ""
    return f"{counts['rows']:,} rows{tokens} -> {counts['sequences']:,} sequences"
