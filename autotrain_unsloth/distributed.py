"""Which process this is when a launcher (accelerate, torchrun) runs one per device: only rank 0 writes files
and prints the job's own lines, so that every output is written once. Read from the launcher's environment,
so it holds before torch.distributed is set up."""

from __future__ import annotations

import os
import sys


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's GPU on its machine (each DDP rank loads the whole model onto its own: device_map {"": it})."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


def say(message: str) -> None:
    """Print on rank 0 only (each rank would print the same line)."""
    if is_main():
        print(message, flush=True)


def end_process_group() -> None:
    """Tear down the process group the trainer set up, before the interpreter exits: left to exit, gloo's worker
    threads can be destroyed while still joinable, which aborts the process (SIGABRT) after a finished run."""
    distributed = sys.modules.get("torch.distributed")  # never import torch here: Unsloth must come first
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


def any_rank(*flags: bool) -> tuple[bool, ...]:
    """Each flag true on every rank when it is true on any (one small all-reduce; nothing to do with one process)."""
    distributed = sys.modules.get("torch.distributed")
    if world_size() == 1 or distributed is None or not distributed.is_initialized():
        return flags
    import torch

    device = f"cuda:{torch.cuda.current_device()}" if distributed.get_backend() == "nccl" else "cpu"
    values = torch.tensor([int(flag) for flag in flags], device=device)
    distributed.all_reduce(values, op=distributed.ReduceOp.MAX)
    return tuple(bool(value) for value in values.tolist())
