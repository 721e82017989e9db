"""torchao's AdamW8bit with its per-weight update compiled once.

torchao 0.18's `AdamW8bit.step` calls `torch.compile(single_param_adam, fullgraph=True, dynamic=False)` anew for
every weight at every step. Building that wrapper costs the host more than calling the compiled update it finds
in the cache: 86 against 31 ms per step for 291 small weights on a CPU (docs/benchmarks.md). On an 8B full
fine-tune (226 weight matrices) the H100 sat idle 88-287 ms per step waiting for the host in the optimizer step,
more or less from step to step and host to host (`bash bench/diagnose.sh idle`).

`AdamW8bitCompiledOnce` keeps one compiled function and calls it for each weight: the same function, the same
compile options and so the same cached graphs and kernels; torchao's state, buffers and arguments are untouched.
`step` follows torchao's line by line; tests/test_torchao_adamw.py checks that both give the same weights.
"""

from __future__ import annotations

import inspect

import torch
from torchao.optim import AdamW8bit
from torchao.optim.adam import single_param_adam

_single_param_adam = torch.compile(single_param_adam, fullgraph=True, dynamic=False)
# What `step` passes, in order: torchao 0.18's signature. Another torchao may differ; then its own class runs.
SINGLE_PARAM_ADAM_ARGUMENTS = ("p", "grad", "step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "lr", "beta1", "beta2",
                               "weight_decay", "eps", "IS_ADAMW", "BF16_STOCHASTIC_ROUND")


class AdamW8bitCompiledOnce(AdamW8bit):
    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        # One graph per weight shape: more than dynamo's default cache limit, as in torchao.
        with torch._dynamo.utils.disable_cache_limit():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    grad = p.grad
                    if grad.is_sparse:
                        raise RuntimeError("Sparse gradient is not supported")

                    state = self.state[p]
                    if len(state) == 0:
                        state["step"] = torch.tensor(0.0)
                        state["exp_avg"] = self._new_buffer(p, True)
                        state["exp_avg_sq"] = self._new_buffer(p, False)
                        if group["amsgrad"]:
                            state["max_exp_avg_sq"] = self._new_buffer(p, False)
                    state["step"] += 1

                    if not isinstance(group["lr"], torch.Tensor):
                        raise RuntimeError(
                            "lr was changed to a non-Tensor object. If you want to update lr, please use "
                            "optim.param_groups[0]['lr'].fill_(new_lr)"
                        )

                    _single_param_adam(
                        p.detach(),
                        grad,
                        state["step"],
                        state["exp_avg"],
                        state["exp_avg_sq"],
                        state.get("max_exp_avg_sq", None),
                        group["lr"],
                        group["betas"][0],
                        group["betas"][1],
                        group["weight_decay"],
                        group["eps"],
                        self.is_adamw,
                        self.bf16_stochastic_round and p.dtype is torch.bfloat16,
                    )
        return loss


def transformers_cls_and_kwargs(args) -> tuple[type, dict]:
    """transformers' own class and arguments for `optim="adamw_torch_8bit"`, the class swapped for ours where the
    installed torchao's update takes the arguments ours passes (else torchao's class, said on the console)."""
    from transformers import Trainer

    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    if not issubclass(AdamW8bitCompiledOnce, cls):
        raise RuntimeError(f"transformers runs adamw_torch_8bit as {cls.__module__}.{cls.__name__}, "
                           "not torchao.optim.AdamW8bit: autotrain_unsloth/trainers/torchao_adamw.py needs updating")
    if tuple(inspect.signature(single_param_adam).parameters) != SINGLE_PARAM_ADAM_ARGUMENTS:
        print("! optimizer adamw_torch_8bit runs as torchao's own AdamW8bit, which compiles its update for every "
              "weight at every step (slower on the host): this torchao's single_param_adam takes other arguments "
              "than autotrain_unsloth's compiled-once copy expects (written for torchao 0.18)", flush=True)
        return cls, kwargs
    return AdamW8bitCompiledOnce, kwargs
