"""Which process this is when a launcher (accelerate, torchrun) runs one per device: only rank 0 writes files
and prints the job's own lines, so that every output is written once. Read from the launcher's environment,
so it holds before torch.distributed is set up."""

from __future__ import annotations

import os


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


def say(message: str) -> None:
    """Print on rank 0 only (each rank would print the same line)."""
    if is_main():
        print(message, flush=True)
