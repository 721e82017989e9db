"""The training job in the calling process, as aitraining runs it: `train_clm_sft.train(config)` and the other
`autotrain.trainers.clm` entry points. The same plan, data checks, files and outputs as `create()`, without the
child process: failures raise here (nothing restarts the caller's process).

Unsloth patches transformers, trl and peft when it is imported, so on Unsloth's path it must come first: this
imports it when none of them is loaded yet, runs when the caller imported unsloth before them, and otherwise
stops before anything is written, saying how to fix it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from autotrain_unsloth.interfaces import backend_module, recipe_module
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import PlanError
from autotrain_unsloth.project_lock import holding

if TYPE_CHECKING:
    from autotrain_unsloth.project import AutoTrainProject

PATCHED = ("transformers", "trl", "peft")


def as_params(config: Any) -> LLMTrainingParams:
    """A params object as it is, or a dict read as a training_params.json is (aitraining's when it holds its
    settings, aitraining's defaults when it names none: aitraining's train(config) builds its own params)."""
    if isinstance(config, LLMTrainingParams):
        return config
    if isinstance(config, dict):
        return LLMTrainingParams.from_settings({"defaults": "aitraining", **config})
    raise TypeError(f"train(config): config must be LLMTrainingParams or a dict of its settings, not {type(config).__name__}")


def unsloth_import_problem() -> str | None:
    late = [name for name in PATCHED if name in sys.modules]
    if "unsloth" in sys.modules or not late:
        return None
    return (f"the plan trains with Unsloth, which must be imported before {', '.join(PATCHED)}, and this process "
            f"has imported {', '.join(late)} already: put `import unsloth` first in the script, run the job in its own "
            "process (python -m autotrain.trainers.clm --training_config <project>/training_params.json), or pass "
            "unsloth=False")


def train(config: Any, trainer: str | None = None) -> None:
    """Plan, prepare and train in this process; `trainer` is the module's trainer (train_clm_<trainer>)."""
    from autotrain_unsloth.project import AutoTrainProject

    if isinstance(config, dict) and trainer is not None:
        config = {"trainer": trainer, **config}
    params = as_params(config)
    if trainer is not None and params.trainer != trainer:
        raise PlanError(f"train_clm_{trainer}.train() runs the {trainer} trainer, and the settings say "
                        f"trainer={params.trainer!r}: set trainer={trainer!r}, or call autotrain.trainers.clm.train")
    with holding(params.project_name):  # one run at a time in a project folder, as create() holds it
        _prepare_and_train(AutoTrainProject(params=params, backend="local", process=True))


def _prepare_and_train(project: AutoTrainProject) -> None:
    params, plan = project.prepare()
    if plan.num_processes > 1:
        raise PlanError(f"the plan runs {plan.num_processes} processes (one per GPU); in one process use "
                        "CUDA_VISIBLE_DEVICES to choose one GPU, or run AutoTrainProject(...).create()")
    backend = backend_module(plan.backend)
    if plan.backend == "unsloth":
        problem = unsloth_import_problem()
        if problem:
            raise PlanError(problem)
        if "unsloth" not in sys.modules:
            from autotrain_unsloth.backends.unsloth import import_unsloth  # the Unsloth backend's own first step

            import_unsloth(params)
    from autotrain_unsloth.trainers import recipe  # after Unsloth: the skeleton's modules import transformers

    recipe.run(recipe_module(plan.trainer), params, plan, backend)
