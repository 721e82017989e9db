"""The two interfaces the training skeleton (trainers/recipe.py) calls, and the one table of names to modules.

A backend module (backends/unsloth.py, backends/transformers.py) loads the model the plan describes; a trainer
module (trainers/default.py, sft.py, dpo.py, orpo.py, reward.py) supplies its datasets and builds its transformers
Trainer. Modules satisfy these Protocols as they are (PEP 544); tests/test_interfaces.py checks each one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Optional, Protocol, runtime_checkable

if TYPE_CHECKING:
    from autotrain_unsloth.params import LLMTrainingParams
    from autotrain_unsloth.plan import Plan


@runtime_checkable
class Backend(Protocol):
    def load_model(self, params: LLMTrainingParams, plan: Plan, tokenizer: Any, max_seq_length: int) -> Any:
        """The model, ready to train as the plan says (LoRA attached, or every weight trainable)."""

    def install_packed_attention(self, plan: Plan, model: Any) -> Optional[str]:
        """Set up the attention packed rows run with; returns what will run (None: rows are not packed)."""


@runtime_checkable
class Recipe(Protocol):
    def datasets(self, params: LLMTrainingParams, plan: Plan, tokenizer: Any) -> tuple:
        """(training split, validation split or None), tokenized as this trainer trains them, and optionally a
        third item: warnings about the data found while tokenizing it."""

    def build(self, params: LLMTrainingParams, plan: Plan, model: Any, tokenizer: Any, train: Any,
              valid: Optional[Any], arguments: dict, callbacks: list) -> Any:
        """This trainer's transformers Trainer, with the shared arguments and callbacks."""


BACKENDS = {"unsloth": "autotrain_unsloth.backends.unsloth", "transformers": "autotrain_unsloth.backends.transformers"}
RECIPES = {name: f"autotrain_unsloth.trainers.{name}" for name in ("default", "sft", "dpo", "orpo", "reward")}


def backend_module(name: str) -> Backend:
    """The backend the plan names. Unsloth's module imports nothing of Unsloth's until its import_unsloth runs."""
    return importlib.import_module(BACKENDS[name])


def recipe_module(name: str) -> Recipe:
    return importlib.import_module(RECIPES[name])
