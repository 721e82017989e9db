"""The automatic speed rule on a CPU, where the GPU's reason does not hold: packed rows have no variable-length
attention kernel there, so each runs under a dense mask over its whole square. Measured on SmolLM2-135M with LoRA
(docs/benchmarks.md, CPU): packing and checkpointing both off train about 4x faster than both on, in a quarter of
the memory (checkpointing is sized against the host's memory in fit.py, off where it fits). Returns None where it
does not apply (a GPU, or the setting given), and the GPU rule decides."""

from __future__ import annotations

from typing import Optional

from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan.types import Choice, Environment, chose


def packing(params: LLMTrainingParams, env: Environment) -> Optional[Choice]:
    if env.cuda or params.trainer != "sft" or params.packing is not None:
        return None
    return chose(False, "sft packing off (automatic, CPU: without a variable-length attention kernel a packed row "
                        "runs under a dense mask over all of its tokens, measured slower than padding each batch to "
                        "its longest example; docs/benchmarks.md); --packing turns it on")
