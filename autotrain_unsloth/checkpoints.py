"""Checkpoints on a schedule, resuming from them, and stopping cleanly on SIGTERM or Ctrl-C.

The Trainer writes `<project>/checkpoint-<step>/` (weights, optimizer, scheduler, RNG states, trainer state);
this module decides when, and marks each one complete by writing MARKER into it last, atomically, with the
settings it was made for. A checkpoint without the marker was cut short and is never resumed from. A run is
finished when `run_summary.json` exists: outputs/save.py writes it last.

Only the settings that shape the training itself must match to resume (RESUME_FREE lists the others: how long
to train, how often to log or save, where to upload).
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import time
import zipfile
from typing import Optional

MARKER = "autotrain_unsloth_checkpoint.json"
FINISHED = "run_summary.json"
RESUME_FREE = frozenset({"max_steps", "epochs", "logging_steps", "save_steps", "save_minutes", "save_total_limit",
                         "save_strategy", "resume_from_checkpoint", "overwrite_project", "push_to_hub", "username",
                         "token", "log", "repo_id", "hub_private"})


def resume_settings(params) -> dict:
    return {key: value for key, value in params.public_dict().items() if key not in RESUME_FREE}


def schedule(params) -> tuple[int, float]:
    """(every N steps, every M minutes): the saves on a schedule. aitraining's save_strategy: save_steps counts only
    with "steps" (aitraining's rule), and "no" saves on no schedule unless save_minutes was given."""
    steps = params.save_steps if params.save_strategy in (None, "steps") else 0
    quiet = params.save_strategy == "no" and "save_minutes" not in params.model_fields_set
    return steps, 0 if quiet else params.save_minutes


def complete_checkpoints(project: str) -> list[dict]:
    """The complete checkpoints in the project folder, oldest first: {"path", "step", "settings"} each."""
    found = []
    for path in glob.glob(os.path.join(project, "checkpoint-*")):
        match = re.fullmatch(r"checkpoint-(\d+)", os.path.basename(path))
        marker = read_marker(path)
        if match and marker is not None:
            found.append({"path": path, "step": int(match.group(1)), "settings": marker.get("settings", {})})
    return sorted(found, key=lambda checkpoint: checkpoint["step"])


def latest_checkpoint(project: str) -> Optional[dict]:
    """The newest complete checkpoint in the project folder; None if there is none."""
    found = complete_checkpoints(project)
    return found[-1] if found else None


def damage(checkpoint: str) -> Optional[str]:
    """The first file of a checkpoint that cannot be read whole, and why (a full disk or a killed copy leaves one
    cut short); None when all can. Reads headers and directories only, never the weights."""
    for name in sorted(os.listdir(checkpoint)):
        path = os.path.join(checkpoint, name)
        try:
            if name.endswith(".safetensors"):
                problem = _safetensors_damage(path)
            elif name.endswith((".pt", ".pth", ".bin")):  # torch.save's zip format: its directory is at the end
                zipfile.ZipFile(path).close()
                problem = None
            elif name.endswith(".json"):
                with open(path) as f:
                    json.load(f)
                problem = None
            else:
                continue
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            problem = f"cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'empty'})"
        if problem:
            return f"{name} {problem}"
    return None


def _safetensors_damage(path: str) -> Optional[str]:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else None
        if length is None or 8 + length > size:
            return f"is cut short ({size:,} bytes, less than its own header)"
        header = json.loads(f.read(length))
    end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    if 8 + length + end != size:
        return f"is cut short ({size:,} bytes; its header describes {8 + length + end:,})"
    return None


def read_marker(path: str) -> Optional[dict]:
    try:
        with open(os.path.join(path, MARKER)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def differing_settings(saved: dict, current: dict) -> list[str]:
    return sorted(key for key in set(saved) | set(current) if saved.get(key) != current.get(key))


def is_finished(project: str) -> bool:
    return os.path.isfile(os.path.join(project, FINISHED))


class Stopped(RuntimeError):
    """The job was asked to stop (SIGTERM, Ctrl-C) and saved a checkpoint first; the message says how to resume."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.exit_code = 128 + signal_number


def checkpoint_callback(params, project: str):
    """A Trainer callback: a checkpoint every `save_steps` steps and every `save_minutes` minutes, and one at the
    next step boundary after SIGTERM or SIGINT, after which training stops (`stop_signal` says which)."""
    from transformers import TrainerCallback

    from autotrain_unsloth.distributed import any_rank, is_main

    settings = resume_settings(params)
    save_steps, save_minutes = schedule(params)

    class Checkpoints(TrainerCallback):
        stop_signal: Optional[int] = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.last_save = time.monotonic()
            for number in (signal.SIGTERM, signal.SIGINT):
                signal.signal(number, self._request_stop)

        def _request_stop(self, number, frame):
            self.stop_signal = self.stop_signal or number  # the first one; acted on at the next step boundary

        def on_step_end(self, args, state, control, **kwargs):
            due = (save_steps > 0 and state.global_step % save_steps == 0) or (
                save_minutes > 0 and time.monotonic() - self.last_save >= 60 * save_minutes)
            # Every rank must save and stop at the same step: rank 0's clock and any rank's signal decide for all.
            due, stop = any_rank(due, self.stop_signal is not None)
            if due or stop:
                control.should_save = True
            if stop:
                control.should_training_stop = True
                self.stop_signal = self.stop_signal or signal.SIGTERM

        def on_save(self, args, state, control, **kwargs):
            self.last_save = time.monotonic()
            path = os.path.join(project, f"checkpoint-{state.global_step}")
            if is_main() and os.path.isdir(path):
                tmp = os.path.join(path, MARKER + ".tmp")
                with open(tmp, "w") as f:
                    json.dump({"step": state.global_step, "settings": settings}, f, indent=1)
                os.replace(tmp, os.path.join(path, MARKER))

        def on_train_end(self, args, state, control, **kwargs):
            for number in (signal.SIGTERM, signal.SIGINT):
                signal.signal(number, signal.SIG_DFL)

    return Checkpoints()
