"""The pure decision: (settings, environment) -> Plan, the rules run in order, each one's reasons, warnings
and errors collected. Raises PlanError listing every problem when the settings cannot run here."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import cpu, disk, fit, rules, schedule, speed
from autotrain_unsloth.plan.types import Asked, Choice, Environment, Plan, PlanError
from autotrain_unsloth.settings import defaults


def params_fingerprint(params: LLMTrainingParams) -> str:
    """Identifies the settings a plan was made for (the token is never part of it)."""
    return hashlib.sha256(json.dumps(params.public_dict(), sort_keys=True).encode()).hexdigest()[:16]


def decide(params: LLMTrainingParams, env: Environment) -> Plan:
    choices: list[Choice] = [Choice(None, (), (*params.setting_warnings(), *env.data_notes))]

    def take(choice: Choice) -> Any:
        choices.append(choice)
        return choice.value

    backend = take(rules.backend(params, env))
    method = take(rules.method(params, env, backend))
    weights_dtype, autocast = take(rules.precision(params, env, backend, method))
    targets = take(rules.lora_targets(params, env, backend, method))
    new_tokens = take(rules.new_tokens(params, env, backend, method))
    take(rules.notices(params, env, backend, method))
    sequence = take(rules.sequence_length(params, env))
    liger = take(speed.liger_kernels(params, env, backend))
    packing = take(cpu.packing(params, env) or speed.packing(params, env, backend))
    device, processes = take(rules.devices(params, env, backend, method))
    # the batch settings for the data first (they are only ever lowered), then the step fitted to memory with them
    batch_size, accumulation, steps = take(schedule.schedule(params, env, sequence, packing, processes))
    memory = take(fit.memory_fit(params, env, backend, method, weights_dtype, autocast, targets, sequence, liger,
                                 batch_size, accumulation, processes))
    packed_attention = take(speed.packed_attention(params, env, backend, method, packing, weights_dtype, autocast))
    optimizer = take(speed.optimizer(params, env, method, memory.state_offload))
    fp8_linears = take(speed.fp8_linears(params, env, method, weights_dtype, processes))
    take(disk.disk_space(params, env, method, weights_dtype, optimizer))
    eval_strategy, save_strategy = take(rules.save_policy(params))
    take(rules.checkpoint_schedule(params))
    take(rules.publish(params, env))
    take(rules.gguf_export(params, env, method))
    resume_from = take(rules.resume(params, env))
    choices.append(Choice(None, (defaults.describe(params),), ()))

    errors = [error for choice in choices for error in choice.errors]
    if errors:
        raise PlanError("these settings cannot run here:\n  - " + "\n  - ".join(errors))
    return Plan(
        asked=Asked.of(params), backend=backend, method=method, trainer=params.trainer, weights_dtype=weights_dtype,
        autocast=autocast, lora_target_modules=targets, gradient_checkpointing=memory.checkpointing, packing=packing,
        optimizer=optimizer, sequence_length=sequence, eval_strategy=eval_strategy, save_strategy=save_strategy,
        device=device, num_processes=processes, model_type=env.model_type,
        reasons=tuple(reason for choice in choices for reason in choice.reasons),
        warnings=tuple(warning for choice in choices for warning in choice.warnings),
        params_fingerprint=params_fingerprint(params), memory_estimate_gib=memory.estimate,
        optimizer_state_offload=memory.state_offload, optimizer_state_resident_gib=memory.resident_state_gib,
        batch_size=memory.batch_size,
        gradient_accumulation=memory.gradient_accumulation,
        update=fit.update_summary(method, weights_dtype, autocast, optimizer, memory.state_offload,
                                  memory.resident_state_gib, fp8_linears),
        packed_attention=packed_attention, new_tokens=new_tokens, liger=liger, fp8_linears=fp8_linears,
        resume_from=resume_from,
        environment=dataclasses.asdict(env), steps=steps,
    )
