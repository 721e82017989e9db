"""A run that cannot learn stops and says so: a loss or gradient norm that is not a finite number.

Checked at every optimizer step, from the loss of each micro-batch (the Trainer's `training_step`) and the
gradient norm the Trainer measures before clipping, with one synchronisation a step (the Trainer's own
nan/inf filter, which logged a NaN loss as 0, is turned off in arguments.py: it synchronised at every
micro-batch). With fp16 a non-finite gradient norm is the loss scaler at work (it skips the step and lowers its
scale) and is left to it; a non-finite loss stops any run. The run stops at the step where it happens and saves
nothing of it: no checkpoint, no final model; the newest checkpoint, made before it, stays. The step is logged,
so the console and the log show `nan`. Before the final save, the trained weights themselves must be finite.
"""

from __future__ import annotations

import math

from autotrain_unsloth.checkpoints import latest_checkpoint
from autotrain_unsloth.distributed import any_rank
from autotrain_unsloth.errors import UserError


class Diverged(UserError, RuntimeError):
    """Training produced a non-finite loss, gradient norm or weight; the message says where and what to try."""


def remedies(params, plan) -> str:
    tries = [f"a lower learning rate (--lr, now {params.lr:g})"]
    if plan.autocast == "fp16":
        tries.append("--mixed-precision bf16 in place of fp16 where the GPU has it")
    if params.max_grad_norm == 0:
        tries.append("gradient clipping (--max-grad-norm 1)")
    return "try " + ", or ".join(tries)


def kept_checkpoint(project: str) -> str:
    found = latest_checkpoint(project)
    if found is None:
        return "no checkpoint was saved before it"
    return (f"the newest checkpoint, {found['path']}, is kept (the same command resumes from it; with new settings "
            "add --resume-from-checkpoint none to start over)")


def divergence_guard(params, plan):
    """A Trainer callback; `watch(trainer)` attaches it to the trainer's training step and gradient norm."""
    import torch
    from transformers import TrainerCallback

    fp16 = plan.autocast == "fp16"

    class Guard(TrainerCallback):
        def __init__(self):
            self.losses: list = []  # this optimizer step's micro-batch losses, on the device
            self.grad_norm = None
            self.last_finite: tuple[int, float] | None = None  # (step, loss)
            self.message: str | None = None  # set when the run diverged

        def watch(self, trainer) -> None:
            training_step, grad_norm = trainer.training_step, trainer._get_grad_norm

            def step(*args, **kwargs):
                loss = training_step(*args, **kwargs)
                self.losses.append(loss.detach())
                return loss

            def norm(*args, **kwargs):
                self.grad_norm = grad_norm(*args, **kwargs)
                return self.grad_norm

            trainer.training_step = step
            trainer._get_grad_norm = norm  # the pre-clipping norm the Trainer logs (transformers 5)

        def on_step_end(self, args, state, control, **kwargs):
            values = [torch.stack([loss.float() for loss in self.losses]).sum()] if self.losses else []
            if self.grad_norm is not None:
                values.append(torch.as_tensor(self.grad_norm, dtype=torch.float32, device=values[0].device
                                              if values else None))
            numbers = torch.stack(values).tolist() if values else []  # the step's one synchronisation
            loss = numbers[0] if self.losses else None
            norm = numbers[-1] if self.grad_norm is not None else None
            self.losses, self.grad_norm = [], None
            bad_loss = loss is not None and not math.isfinite(loss)
            bad_norm = norm is not None and not math.isfinite(norm) and not fp16
            (stop,) = any_rank(bad_loss or bad_norm)  # every rank stops at the same step
            if not stop:
                if loss is not None:
                    self.last_finite = (state.global_step, loss)
                return
            what = (f"the loss is {loss}" if bad_loss else f"the gradient norm is {norm}" if bad_norm
                    else "another process's loss or gradient norm is not finite")
            last = (f"the last finite loss was {self.last_finite[1]:.4f} at step {self.last_finite[0]}"
                    if self.last_finite else "no step before it had a finite loss")
            self.message = (f"training stopped at step {state.global_step}: {what}, not a finite number, so the model "
                            f"cannot learn; {last}; nothing of this step was saved and no final model was written; "
                            f"{kept_checkpoint(params.project_name)}; {remedies(params, plan)}.")
            control.should_training_stop = True
            control.should_log = True  # the step's nan reaches the console and the log
            control.should_save = control.should_evaluate = False

        def on_epoch_end(self, args, state, control, **kwargs):
            if self.message:
                control.should_save = control.should_evaluate = False

        def check_weights(self, model) -> None:
            """Raise Diverged if a trained weight holds a non-finite value (never saved as the final model)."""
            bad = [name for name, weight in model.named_parameters()
                   if weight.requires_grad and not bool(torch.isfinite(weight).all())]
            if bad:
                raise Diverged(f"the trained weights hold values that are not finite numbers ({len(bad)} tensors, "
                               f"e.g. {bad[0]}), so no final model was written; {kept_checkpoint(params.project_name)}; "
                               f"{remedies(params, plan)}.")

    return Guard()
