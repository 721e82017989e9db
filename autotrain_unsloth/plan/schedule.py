"""The step schedule: how many optimizer steps the data makes with the batch settings, and the batch settings
themselves where the user left them at their defaults.

The counts come from the environment (`Environment.data_counts`): the parent tokenizes and packs the training
split as the job will (data/prepare/counts.py) and plans again with them, so this rule stays a pure function. AutoTrain's
defaults (batch 2 x gradient accumulation 4) suit thousands of rows; on a few hundred packed rows they make a
handful of steps, the first at learning rate 0, and the model does not move. So a default is lowered (never
raised, which could need more memory) until the run makes USEFUL_STEPS, and a run that still makes fewer, or
whose warm-up takes most of its steps, is warned about, naming the setting to change.
"""

from __future__ import annotations

import math
from typing import Callable

from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan.types import Choice, Environment

# Fewer optimizer steps than this rarely teach a model anything (docs/plan.md: measured on SmolLM2, a task it
# did not know: 3 steps left it at 0/40, 30 steps reached 20/40 with LoRA).
USEFUL_STEPS = 30


def optimizer_steps(sequences: int, batch_size: int, accumulation: int, processes: int, epochs: int,
                    max_steps: int) -> tuple[int, int]:
    """(steps per epoch, steps in all) as transformers' Trainer counts them: every process takes batch_size
    sequences a batch, the last batch may be short, and a short last accumulation still steps."""
    batches = math.ceil(sequences / (batch_size * processes))
    per_epoch = max(math.ceil(batches / accumulation), 1)
    return per_epoch, max_steps if max_steps > 0 else per_epoch * epochs


def warmup_steps(params: LLMTrainingParams, steps: int) -> int:
    """transformers' rule for warmup_steps below 1: a share of the steps, rounded up."""
    return math.ceil(steps * params.warmup_ratio)


def schedule(params: LLMTrainingParams, env: Environment, sequence_length: int, packing: bool, processes: int) -> Choice:
    """value: (batch_size, gradient_accumulation, counts or None)."""
    asked = (params.batch_size, params.gradient_accumulation)
    counts = env.data_counts
    if not counts:
        return Choice((*asked, None), ("steps: not counted (the data is counted when a project runs; a job launched "
                                       "on its own trains with the batch settings as given)",))
    if counts.get("sequence_length") != sequence_length or counts.get("packing") != packing:
        return Choice((*asked, None), ("steps: not counted (the data was counted for another sequence length or "
                                       "packing)",))
    processes = max(processes, 1)
    batch, accumulation = asked
    left = [name for name in ("gradient_accumulation", "batch_size") if name not in params.model_fields_set]

    def steps(batch: int, accumulation: int) -> int:
        return optimizer_steps(counts["sequences"], batch, accumulation, processes, params.epochs, params.max_steps)[1]

    reasons, warnings = [], []
    if params.max_steps <= 0 and steps(batch, accumulation) < USEFUL_STEPS and left:
        before = steps(batch, accumulation)
        if "gradient_accumulation" in left:
            accumulation = _largest_giving(lambda g: steps(batch, g), accumulation)
        if "batch_size" in left and steps(batch, accumulation) < USEFUL_STEPS:
            batch = _largest_giving(lambda b: steps(b, accumulation), batch)
        if (batch, accumulation) != asked:
            reasons.append(f"batch {batch} x gradient accumulation {accumulation} (automatic: {asked[0]} x {asked[1]}, "
                           f"{' and '.join(left)} left at the default, make {before} optimizer steps on "
                           f"{counts['sequences']:,} sequences, fewer than {USEFUL_STEPS}; --batch-size and "
                           "--gradient-accumulation set them)")
    per_epoch, total = optimizer_steps(counts["sequences"], batch, accumulation, processes, params.epochs,
                                       params.max_steps)
    warmup = warmup_steps(params, total)
    shown = {**counts, "steps_per_epoch": per_epoch, "steps": total, "warmup_steps": warmup}
    reasons.append(f"steps: {counts['rows']:,} rows" + (f", {counts['tokens']:,} tokens" if counts.get("tokens") else "")
                   + f" -> {counts['sequences']:,} sequences of up to {sequence_length} tokens"
                   + (" (packed)" if packing else "") + f"; batch {batch} x {accumulation} x {processes} process(es): "
                   f"{per_epoch} optimizer steps an epoch, {total} in all, {warmup} of them warm-up")
    if total < USEFUL_STEPS:
        warnings.append(f"this run makes {total} optimizer steps, fewer than {USEFUL_STEPS}: the model will barely "
                        f"change. {_more_steps_hint(params, left, batch, accumulation, per_epoch)}")
    if total > 0 and 2 * warmup > total:
        warnings.append(f"warm-up takes {warmup} of the {total} optimizer steps (warmup_ratio={params.warmup_ratio}): "
                        "the learning rate is below its set value for most of the run; lower --warmup-ratio or make "
                        "more steps.")
    return Choice((batch, accumulation, shown), tuple(reasons), tuple(warnings))


def _largest_giving(steps_for: Callable[[int], int], start: int) -> int:
    """The largest value from start down to 1 that gives USEFUL_STEPS; 1 if none does."""
    for value in range(start, 0, -1):
        if steps_for(value) >= USEFUL_STEPS:
            return value
    return 1


def _more_steps_hint(params: LLMTrainingParams, left: list, batch: int, accumulation: int, per_epoch: int) -> str:
    if params.max_steps > 0:
        return f"Raise --max-steps (now {params.max_steps})."
    hints = [f"raise --epochs (now {params.epochs}; {math.ceil(USEFUL_STEPS / per_epoch)} would do)"]
    if accumulation > 1:
        hints.append(f"lower --gradient-accumulation (now {accumulation})")
    if batch > 1:
        hints.append(f"lower --batch-size (now {batch})")
    if params.trainer == "sft" and params.packing is not False:
        hints.append("--no-packing (one example a sequence)")
    return "To make more: " + ", or ".join(hints) + "."
