"""Check what was loaded against the plan, before the first training step.

Libraries can quietly train something else than asked (an Unsloth release loaded 16-bit weights when
asked for 4-bit; a LoRA wrapper can leave every weight trainable). The job counts what it got and stops
when it differs from the plan.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from autotrain_unsloth.attention import varlen
from autotrain_unsloth.distributed import say
from autotrain_unsloth.errors import UserError
from autotrain_unsloth.plan import TORCH_DTYPE_NAMES, Plan

DTYPE_NAMES = {f"torch.{torch_name}": name for name, torch_name in TORCH_DTYPE_NAMES.items()}


class PlanMismatch(UserError, RuntimeError):
    """The loaded model is not what the plan says would run."""


def inspect_model(model) -> dict:
    """Facts about a loaded model: quantized layers, LoRA layers, trainable parameters, dtypes."""
    total = trainable = 0
    frozen_dtypes: Counter = Counter()
    trainable_dtypes: Counter = Counter()
    for parameter in model.parameters():
        count = parameter.numel()
        total += count
        name = DTYPE_NAMES.get(str(parameter.dtype), str(parameter.dtype).replace("torch.", ""))
        if parameter.requires_grad:
            trainable += count
            trainable_dtypes[name] += count
        else:
            frozen_dtypes[name] += count
    # bitsandbytes' own classes only: PEFT's LoRA wrappers around them share their names.
    layer_kinds = Counter(type(module).__name__ for module in model.modules()
                          if type(module).__module__.startswith("bitsandbytes"))
    lora_layers = sum(1 for module in model.modules() if hasattr(module, "lora_A") and len(getattr(module, "lora_A", {})) > 0)
    return {
        "parameters": total,
        "trainable_parameters": trainable,
        "trainable_share": round(trainable / total, 6) if total else 0.0,
        "linear_4bit_layers": layer_kinds.get("Linear4bit", 0),
        "linear_8bit_layers": layer_kinds.get("Linear8bitLt", 0),
        "lora_layers": lora_layers,
        "frozen_dtypes": dict(frozen_dtypes),
        "trainable_dtypes": dict(trainable_dtypes),
    }


def mismatches(plan: Plan, facts: dict) -> list[str]:
    """How the loaded model differs from the plan; empty when it matches."""
    found = []
    quantized = facts["linear_4bit_layers"] + facts["linear_8bit_layers"]
    if plan.method == "full":
        if facts["trainable_parameters"] != facts["parameters"]:
            found.append(f"full fine-tuning planned, but only {facts['trainable_parameters']:,} of "
                         f"{facts['parameters']:,} parameters are trainable")
        if facts["lora_layers"] or quantized:
            found.append(f"full fine-tuning planned, but the model has {facts['lora_layers']} LoRA and {quantized} "
                f"quantized layers")
        loaded = dominant(facts["trainable_dtypes"])
        if loaded and loaded != plan.weights_dtype:
            found.append(f"{plan.weights_dtype} weights planned, loaded mostly {loaded} ({facts['trainable_dtypes']})")
    else:
        if facts["lora_layers"] == 0:
            found.append(f"{plan.method} planned, but no LoRA layer was attached")
        if facts["trainable_parameters"] >= facts["parameters"] or facts["trainable_parameters"] == 0:
            found.append(f"{plan.method} planned, but {facts['trainable_parameters']:,} of {facts['parameters']:,} "
                f"parameters are trainable")
        if plan.method == "qlora-4bit" and facts["linear_4bit_layers"] == 0:
            found.append("QLoRA (int4) planned, but no 4-bit layer was loaded: the base weights are not quantized")
        if plan.method == "lora-8bit" and facts["linear_8bit_layers"] == 0:
            found.append("8-bit LoRA planned, but no 8-bit layer was loaded: the base weights are not quantized")
        if plan.method == "lora":
            if quantized:
                found.append(f"16-bit LoRA planned, but {quantized} quantized layers were loaded")
            loaded = dominant(facts["frozen_dtypes"])
            if loaded and loaded != plan.weights_dtype:
                found.append(f"{plan.weights_dtype} base weights planned, loaded mostly {loaded} ({facts['frozen_dtypes']})")
    return found


def liger_modules(model) -> int:
    """Modules running Liger's kernels: the Trainer rebinds each patched module's forward and its name."""
    return sum(1 for module in model.modules() if module._get_name().startswith("Liger"))


def offloaded_state(optimizer) -> bool:
    """Whether the state offload (trainers/state_offload.py) holds this optimizer's state."""
    from autotrain_unsloth.trainers.state_offload import installed

    return optimizer is not None and installed(optimizer) is not None


def first_step_check(plan: Plan, project_dir: str):  # plan: as verify_loaded returned it
    """A Trainer callback: at the first step, record whether gradient checkpointing is active and how many modules
    run Liger's kernels (both set up by the Trainer, after the load was verified), and stop if the transformers
    path disagrees with the plan (Unsloth's own checkpointing is recorded, not judged: it works through its own
    patches, which transformers' flag does not always reflect). After it, record how many attention calls ran
    torch's varlen_attn (and on the transformers interface how many sdpa), and warn if a plan of varlen_attn ran
    none there."""
    from transformers import TrainerCallback

    class FirstStepCheck(TrainerCallback):
        facts = dict(plan.verified or {})
        calls_before: dict = {}  # varlen.CALLS when the first step began

        def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
            active = bool(getattr(model, "is_gradient_checkpointing", False))
            liger = liger_modules(model)
            offloaded = offloaded_state(optimizer)
            self.facts.update(gradient_checkpointing_active=active, liger_modules=liger, optimizer_state_offloaded=offloaded)
            dataclasses.replace(plan, verified=self.facts).save(project_dir)
            say(f"Gradient checkpointing active at the first step: {active} (planned: {plan.gradient_checkpointing})"
                + (f"; modules running Liger's kernels: {liger}" if plan.liger or liger else ""))
            if plan.gradient_checkpointing in ("on", "off") and active != (plan.gradient_checkpointing == "on"):
                raise PlanMismatch(f"gradient checkpointing planned {plan.gradient_checkpointing}, but it is "
                                   f"{'on' if active else 'off'} at the first step")
            if plan.optimizer_state_offload != offloaded:
                planned = "in host memory" if plan.optimizer_state_offload else "on the device"
                raise PlanMismatch(f"optimizer state planned {planned}, but it is "
                                   f"{'offloaded' if offloaded else 'not offloaded'} at the first step")
            if plan.liger != bool(liger):
                raise PlanMismatch(f"Liger's kernels planned {'on' if plan.liger else 'off'}, but {liger} modules run "
                                   "them at the first step")

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 0:
                self.calls_before = dict(varlen.CALLS)

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step != 1 or plan.packed_attention not in ("torch-varlen", "torch-varlen-in-unsloth"):
                return
            calls = {kernel: count - self.calls_before.get(kernel, 0) for kernel, count in varlen.CALLS.items()}
            if plan.packed_attention == "torch-varlen-in-unsloth":
                # Unsloth's dispatch keeps rows whose documents all have one length on its per-document SDPA (one
                # batched call, the faster kernel there); only the calls it sends to varlen_attn are seen.
                calls = {"varlen_attn": calls["varlen_attn"]}
                say(f"Packed attention in the first step: {calls['varlen_attn']} calls of torch's varlen_attn through "
                    "Unsloth's dispatch (the others, if any, ran Unsloth's per-document SDPA)")
            else:
                say(f"Packed attention in the first step: {calls['varlen_attn']} calls of torch's varlen_attn, "
                    f"{calls['sdpa']} of sdpa (planned: torch-varlen)")
            self.facts["packed_attention_calls"] = calls
            dataclasses.replace(plan, verified=self.facts).save(project_dir)
            if plan.packed_attention == "torch-varlen" and calls["varlen_attn"] == 0 and calls["sdpa"]:
                # Not a stop: sdpa under the block-diagonal mask computes the same, only slower; a layer the kernel
                # cannot take (a sliding window, dropout) is the likely reason.
                say("Warning: packed attention planned torch-varlen, but every attention call of the first step ran "
                    "sdpa under transformers' block-diagonal mask (the same results, slower); recorded as "
                    "verified.packed_attention_calls in plan.json")

    return FirstStepCheck()


def dominant(dtype_counts: dict[str, int]) -> str | None:
    """The dtype holding most parameters (a few fp32 norms beside bf16 weights are by design)."""
    return max(dtype_counts, key=lambda dtype: dtype_counts[dtype]) if dtype_counts else None


def verify_loaded(model, plan: Plan, project_dir: str, packed_attention: str | None = None) -> Plan:
    """Inspect, record the facts in plan.json (with the attention packed rows run with, as the backend set it
    up), print them; raise PlanMismatch if they contradict the plan."""
    facts = inspect_model(model)
    if packed_attention:
        facts["packed_attention"] = packed_attention
    problems = mismatches(plan, facts)
    facts["matches_plan"] = not problems
    verified = dataclasses.replace(plan, verified=facts)
    verified.save(project_dir)
    say("Loaded model: " + ", ".join(f"{key}={value}" for key, value in facts.items()))
    if problems:
        raise PlanMismatch("the loaded model does not match the plan, stopping before training:\n  - "
                           + "\n  - ".join(problems))
    return verified
