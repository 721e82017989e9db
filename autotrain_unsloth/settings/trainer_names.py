"""The optimizer and scheduler names transformers' Trainer accepts (transformers 5.17's OptimizerNames and
SchedulerType), so that a misspelt --optimizer or --scheduler is refused when the settings are built, not after
the weights have loaded. Written out because the parent process and the job import no transformers before Unsloth;
tests/test_params.py holds them to the installed transformers."""

from __future__ import annotations

OPTIMIZERS = (
    "adamw_torch", "adamw_torch_fused", "adamw_torch_xla", "adamw_torch_npu_fused", "adafactor", "adamw_anyprecision",
    "adamw_torch_4bit", "adamw_torch_8bit", "ademamix", "sgd", "adagrad", "adamw_bnb_8bit", "adamw_8bit",
    "ademamix_8bit", "lion_8bit", "lion_32bit", "paged_adamw_32bit", "paged_adamw_8bit", "paged_ademamix_32bit",
    "paged_ademamix_8bit", "paged_lion_32bit", "paged_lion_8bit", "rmsprop", "rmsprop_bnb", "rmsprop_bnb_8bit",
    "rmsprop_bnb_32bit", "galore_adamw", "galore_adamw_8bit", "galore_adafactor", "galore_adamw_layerwise",
    "galore_adamw_8bit_layerwise", "galore_adafactor_layerwise", "lomo", "adalomo", "grokadamw",
    "schedule_free_radam", "schedule_free_adamw", "schedule_free_sgd", "apollo_adamw", "apollo_adamw_layerwise",
    "stable_adamw",
)
SCHEDULERS = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt",
    "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay", "greedy",
)


def unknown_name(setting: str, value: str) -> str | None:
    """One sentence when `value` is not a name transformers knows for `setting` ("optimizer" or "scheduler")."""
    known = OPTIMIZERS if setting == "optimizer" else SCHEDULERS
    if value in known:
        return None
    import difflib

    close = difflib.get_close_matches(value, known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return (f"{setting}={value!r} is not one transformers knows{hint}: choose one of {', '.join(known)} "
            f"(--{setting}).")
