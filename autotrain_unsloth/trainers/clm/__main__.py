"""The training child process, as AutoTrain launches it:

    accelerate launch ... -m autotrain_unsloth.trainers.clm --training_config <project>/training_params.json

It also accepts a stock AutoTrain training_params.json. The job follows `<project>/plan.json` when it was
made for these settings, and otherwise makes (and saves) the plan itself. Unsloth, when planned, is
imported before anything imports transformers, trl or peft; every job runs in a fresh process because
Unsloth's patches are process-wide and cannot be undone.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from pydantic import ValidationError

from autotrain_unsloth.backends import UnslothLoadError
from autotrain_unsloth.checkpoints import Stopped
from autotrain_unsloth.distributed import end_process_group, is_main, say, world_size
from autotrain_unsloth.errors import UserError
from autotrain_unsloth.interfaces import backend_module, recipe_module
from autotrain_unsloth.outputs.publish import UploadFailed
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import Plan, decide, make_plan, params_fingerprint
from autotrain_unsloth.project_lock import holding_unless_parent_does
from autotrain_unsloth.trainers.divergence import Diverged


def job_plan(params: LLMTrainingParams) -> tuple[LLMTrainingParams, Plan]:
    path = os.path.join(params.project_name, "plan.json")
    if os.path.isfile(path):
        plan = Plan.load(path)
        if plan.params_fingerprint == params_fingerprint(params):
            say(f"Following {path}: {plan.backend} backend, {plan.method}, {plan.trainer} trainer.")
            return params, plan
        say(f"{path} was made for other settings; planning again.")
    if world_size() == 1:
        # A settings file alone (written by AutoTrain, aitraining or a script): prepare the data as create() does.
        from autotrain_unsloth.project import AutoTrainProject

        return AutoTrainProject(params=params, backend="local", process=True).prepare()
    plan = make_plan(params)
    say(plan.render())
    plan.save(params.project_name)
    return params, plan


def restart_with(params: LLMTrainingParams, plan: Plan, found: dict, message: str, training_config: str) -> None:
    """Re-plan with what this job found out (`found`: Environment fields) and restart it in a fresh process:
    Unsloth's patches cannot be undone, and a process that ran out of GPU memory is best left behind."""
    replanned = decide(params, dataclasses.replace(plan.probed_environment(), **found))
    print(message, flush=True)
    print(replanned.render(), flush=True)
    replanned.save(params.project_name)
    os.execv(sys.executable, [sys.executable, "-m", "autotrain_unsloth.trainers.clm", "--training_config",
                              os.path.join(params.project_name, "training_params.json")])


def checkpointing_turned_off_automatically(params: LLMTrainingParams, plan: Plan) -> bool:
    return plan.gradient_checkpointing == "off" and not params.disable_gradient_checkpointing


def remedy(exc: BaseException, params: LLMTrainingParams, plan: Plan) -> dict | None:
    """What to re-plan with after this failure (Environment fields), or None to let it propagate: Unsloth
    could not load the model -> the transformers path; out of GPU memory with checkpointing turned off
    automatically -> checkpointing on. Any other error, out-of-memory ones included, is the user's to see."""
    import torch

    if isinstance(exc, UnslothLoadError):
        return {"unsloth_load_error": str(exc)}
    if isinstance(exc, torch.OutOfMemoryError) and checkpointing_turned_off_automatically(params, plan):
        return {"out_of_memory_without_checkpointing": True}
    return None


RESTART_MESSAGES = {
    "unsloth_load_error": "Unsloth could not load {model}: {error}\nRestarting the job on the transformers path.",
    "out_of_memory_without_checkpointing": "Out of GPU memory with gradient checkpointing turned off automatically "
                                           "({error}).\nRestarting the job with gradient checkpointing on.",
}


class NoRestartUnderLauncher(UserError, RuntimeError):
    """A failure with a remedy, in a job of several processes: one rank cannot restart alone."""


def recover_or_raise(exc: Exception, params: LLMTrainingParams, plan: Plan, training_config: str) -> None:
    """Restart the job with the remedy for this failure (the process is replaced), or raise it."""
    found = remedy(exc, params, plan)
    if found is None:
        raise exc
    if world_size() > 1:
        key = next(iter(found))
        fix = ("--no-unsloth" if key == "unsloth_load_error" else "--no-auto-gradient-checkpointing")
        raise NoRestartUnderLauncher(f"{exc} -- with {world_size()} processes the job does not restart itself (one rank "
                                     f"cannot restart alone); run again with {fix}") from exc
    error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    restart_with(params, plan, found, RESTART_MESSAGES[next(iter(found))].format(model=params.model, error=error),
                 training_config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autotrain_unsloth.trainers.clm")
    parser.add_argument("--training_config", "--training-config", required=True, help="path to training_params.json")
    args = parser.parse_args(argv)
    try:
        params = LLMTrainingParams.load(args.training_config)
        with holding_unless_parent_does(params.project_name, is_main()):
            params, plan = job_plan(params)
            backend = backend_module(plan.backend)
            if plan.backend == "unsloth":
                from autotrain_unsloth.backends.unsloth import import_unsloth

                import_unsloth(params)  # before transformers, trl and peft are imported
            from autotrain_unsloth.trainers import recipe  # after Unsloth: the skeleton's modules import transformers

            try:
                recipe.run(recipe_module(plan.trainer), params, plan, backend)
            except (Stopped, UploadFailed, Diverged):
                raise
            except Exception as exc:
                recover_or_raise(exc, params, plan, args.training_config)
    except Stopped as exc:
        say(str(exc))
        return exc.exit_code
    except (UserError, ValidationError, OSError) as exc:  # the user's to fix: one sentence, no traceback
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        end_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
