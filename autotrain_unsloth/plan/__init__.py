"""What will run, and why: probe the environment, then decide.

`probe()` looks at the machine and the model without loading weights or importing Unsloth (probe.py).
`decide()` is a pure function of (params, environment) -> Plan (decide.py), running the rules of rules.py and
speed.py; architectures.py is the one table of what the planner knows per architecture. Every later step
(launch, load, train, save) follows the Plan and never decides again. The Plan is shown (render.py) and saved
as plan.json (types.py) before any weights load.
"""

from __future__ import annotations

from typing import Optional

from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan.architectures import PACKING_ARCHITECTURES, UNSLOTH_ARCHITECTURES
from autotrain_unsloth.plan.decide import decide, params_fingerprint
from autotrain_unsloth.plan.probe import probe, read_model_config
from autotrain_unsloth.plan.types import TORCH_DTYPE_NAMES, Asked, Environment, Plan, PlanError

__all__ = ["PACKING_ARCHITECTURES", "TORCH_DTYPE_NAMES", "UNSLOTH_ARCHITECTURES", "Asked", "Environment", "Plan",
           "PlanError", "decide", "make_plan", "params_fingerprint", "probe", "read_model_config"]


def make_plan(params: LLMTrainingParams, env: Optional[Environment] = None) -> Plan:
    """probe + decide, for the entry points."""
    return decide(params, env or probe(params))
