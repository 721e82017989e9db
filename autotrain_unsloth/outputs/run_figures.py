"""A finished run's figures, read from the trainer's final state (its log history): the last and best training
and validation loss with their steps, the wall time of training, tokens seen and tokens/s. The model card and
run_summary.json both show these.

The wall time is the final log entry's (the one with train_loss, written when train() returns): with
include_num_input_tokens_seen every logged step also carries a train_runtime, the time up to that step.
"""

from __future__ import annotations

from typing import Optional


def loss_figures(history: list[dict], key: str) -> dict:
    """{"last", "last_step", "best", "best_step", "first"} of one logged loss; Nones where it was never logged."""
    logged = [(entry[key], entry.get("step")) for entry in history if key in entry]
    if not logged:
        return {"first": None, "last": None, "last_step": None, "best": None, "best_step": None}
    best = min(logged, key=lambda pair: pair[0])
    return {"first": logged[0][0], "last": logged[-1][0], "last_step": logged[-1][1], "best": best[0],
            "best_step": best[1]}


def run_figures(history: list[dict], global_step: int, tokens_seen: Optional[int], rows_given: Optional[int],
                sequences: Optional[int], epochs: float) -> dict:
    final = next((entry for entry in reversed(history) if "train_loss" in entry), None)
    runtime = final.get("train_runtime") if final else None
    return {
        "steps": global_step,
        "train_loss": loss_figures(history, "loss"),
        "eval_loss": loss_figures(history, "eval_loss"),
        "train_runtime_s": runtime,
        "tokens_seen": tokens_seen or None,
        "tokens_per_s": round(tokens_seen / runtime, 1) if tokens_seen and runtime else None,
        "rows_given": rows_given,
        "sequences": sequences,
        "epochs": epochs,
    }


def loss_text(figures: dict) -> str:
    """'0.4321 at step 60 (best 0.4102 at step 55)', or '-' when never logged."""
    if figures["last"] is None:
        return "-"
    text = f"{figures['last']:.4f} at step {figures['last_step']}"
    if figures["best_step"] != figures["last_step"]:
        text += f" (best {figures['best']:.4f} at step {figures['best_step']})"
    return text
