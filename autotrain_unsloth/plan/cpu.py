"""The automatic speed rules on a CPU, where the GPU rules' reasons do not hold: no memory estimate decides
gradient checkpointing (host memory is not the limit a GPU's is), and packed rows have no variable-length
attention kernel, so each runs under a dense mask over its whole square. Measured on SmolLM2-135M with LoRA
(docs/benchmarks.md, CPU): both off train about 4x faster than both on, in a quarter of the memory. Each
returns None where it does not apply (a GPU, or the setting given), and the GPU rule decides."""

from __future__ import annotations

from typing import Optional

from autotrain_unsloth.plan.types import Choice, chose


def gradient_checkpointing(params, env) -> Optional[Choice]:
    """value: (checkpointing, memory estimate), as speed.gradient_checkpointing's."""
    if (env.cuda or params.disable_gradient_checkpointing or not params.auto_gradient_checkpointing
            or env.out_of_memory_without_checkpointing):
        return None
    return chose(("off", None), "gradient checkpointing off (automatic, CPU: recomputing each layer's forward pass "
                                "costs time and the activations fit in host memory; docs/benchmarks.md); "
                                "--no-auto-gradient-checkpointing keeps it on")


def packing(params, env) -> Optional[Choice]:
    if env.cuda or params.trainer != "sft" or params.packing is not None:
        return None
    return chose(False, "sft packing off (automatic, CPU: without a variable-length attention kernel a packed row "
                        "runs under a dense mask over all of its tokens, measured slower than padding each batch to "
                        "its longest example; docs/benchmarks.md); --packing turns it on")
