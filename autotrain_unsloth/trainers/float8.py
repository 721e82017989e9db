"""FP8 matmuls for the linear layers the plan names (plan/speed.py fp8_linears): torchao's float8 training swaps
each for a Float8Linear, which casts its input, its weight and the output's gradient to FP8 (one scale per tensor)
for each of its three matmuls and keeps the weight itself, and so the optimizer and the saved model, in its dtype.
The swap is counted against the plan before training."""

from __future__ import annotations

import dataclasses

from autotrain_unsloth.distributed import say
from autotrain_unsloth.plan import Plan
from autotrain_unsloth.verify import PlanMismatch


def float8_linear_count(model) -> int:
    return sum(1 for module in model.modules() if type(module).__name__ == "Float8Linear")


def convert_to_float8(model, plan: Plan, project_dir: str) -> Plan:
    """Swap the planned linear layers of every decoder layer (never the output layer) for Float8Linear; record how
    many were swapped in plan.json's `verified` and stop when it is not every planned one."""
    from torchao.float8 import Float8LinearConfig, convert_to_float8_training

    names = set(plan.fp8_linears or ())
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None

    def planned(module, qualified_name: str) -> bool:
        return module is not output and qualified_name.rsplit(".", 1)[-1] in names

    # pad_inner_dim: FP8 matmuls need the inner side a multiple of 16, and for the weight's gradient that side is the
    # batch's token count, which packed rows leave free; the padding is zeros and adds nothing to the gradient.
    convert_to_float8_training(model, module_filter_fn=planned, config=Float8LinearConfig(pad_inner_dim=True))
    swapped = float8_linear_count(model)
    expected = len(names) * (plan.environment.get("model_shape") or {}).get("layers", 0)
    plan = dataclasses.replace(plan, verified={**(plan.verified or {}), "fp8_linears": swapped})
    plan.save(project_dir)
    say(f"FP8 matmuls: {swapped} linear layers run torchao's float8 training (planned {expected}).")
    if swapped != expected:
        raise PlanMismatch(f"FP8 matmuls were planned for {expected} linear layers ({', '.join(sorted(names))} in each "
                           f"decoder layer), but {swapped} were swapped; stopping before training")
    return plan
