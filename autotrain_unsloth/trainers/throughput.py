"""Speed and memory of a run, measured the same way for every path (ours, and bench/'s reference scripts).

Tokens are the real (non-padding) tokens the Trainer counted (`include_num_input_tokens_seen="non_padding"`).
Time runs from the end of the last warm-up step to the end of the last step, with the GPU synchronised at
each step end, so kernel compilation, autotuning and the optimizer's first allocation are left out.
Peak memory is torch.cuda.max_memory_allocated: up to the start of training (loading) and during training.
Also kept, to explain a slow run: each measured step's time, the allocator's peak reserved memory, how
often it had to free its cache and retry an allocation (`alloc_retries`; each one synchronises the GPU), and
the measured window in Unix time (bench/ lines up the GPU's clock samples with it).
"""

from __future__ import annotations

import itertools
import statistics
import time

WARMUP_STEPS = 10


def throughput_callback(warmup_steps: int = WARMUP_STEPS):
    import torch
    from transformers import TrainerCallback

    class Throughput(TrainerCallback):
        def __init__(self):
            self.warmup_steps = warmup_steps
            # (step, time, tokens seen, Unix time) at each step end; Unix time lines up with outside samples
            self.marks: list[tuple[int, float, int, float]] = []
            self.load_peak_bytes = None
            self.train_peak_bytes = None
            self.train_reserved_bytes = None
            self.alloc_retries = None

        def on_train_begin(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                self.load_peak_bytes = torch.cuda.max_memory_allocated()
                torch.cuda.reset_peak_memory_stats()

        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.marks.append((state.global_step, time.perf_counter(), state.num_input_tokens_seen, time.time()))

        def on_train_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                self.train_peak_bytes = torch.cuda.max_memory_allocated()
                self.train_reserved_bytes = torch.cuda.max_memory_reserved()
                self.alloc_retries = torch.cuda.memory_stats().get("num_alloc_retries")

        def summary(self) -> dict:
            """tokens_per_s and step time over the steps after warm-up (None when there were too few)."""
            result = {"warmup_steps": self.warmup_steps, "measured_steps": 0, "tokens_per_s": None,
                      "measured_tokens": None, "median_step_s": None,
                      "load_peak_gib": _gib(self.load_peak_bytes), "train_peak_gib": _gib(self.train_peak_bytes),
                      "peak_gib": _gib(max(self.load_peak_bytes or 0, self.train_peak_bytes or 0) or None),
                      "train_reserved_peak_gib": _gib(self.train_reserved_bytes), "alloc_retries": self.alloc_retries,
                      "step_s": [], "measured_window_unix": None}
            measured = self.marks[self.warmup_steps - 1:] if self.warmup_steps > 0 else self.marks
            if len(measured) < 2:
                return result
            (_, start, tokens_start, unix_start), (_, end, tokens_end, unix_end) = measured[0], measured[-1]
            steps = [b[1] - a[1] for a, b in itertools.pairwise(measured)]
            result.update(measured_steps=len(steps), measured_tokens=tokens_end - tokens_start,
                          median_step_s=round(statistics.median(steps), 4), step_s=[round(t, 4) for t in steps],
                          measured_window_unix=[round(unix_start, 3), round(unix_end, 3)])
            if tokens_end > tokens_start:
                result["tokens_per_s"] = round((tokens_end - tokens_start) / (end - start), 1)
            return result

    return Throughput()


def _gib(value):
    return None if value is None else round(value / 2**30, 3)
