"""Where the GPU waits inside a training step: a TrainerCallback that profiles a few steps and splits each
step's GPU idle time by what the host was doing when the GPU ran dry.

The callback marks four host phases of every step with `torch.profiler.record_function`:

    forward_backward  on_step_begin -> on_pre_optimizer_step (forward, backward, gradient clipping)
    optimizer         on_pre_optimizer_step -> on_optimizer_step (optimizer.step)
    after_optimizer   on_optimizer_step -> on_step_end (scheduler, zero_grad)
    log_and_next      on_step_end -> the next on_step_begin (logging, which reads the loss and so waits for
                      the GPU, and the next batch)

A gap between GPU kernels is charged to the phases the host was in while it lasted: a GPU idle during
`optimizer` waited for the host to launch the optimizer's kernels. Kernel time is also split by family
(kernel_families): what the host launched during `optimizer` is the optimizer; the rest by the kernel's name.
Figures are with the profiler on.
"""

import collections
import json
import os
import re

PHASES = ("forward_backward", "optimizer", "after_optimizer", "log_and_next")
GPU_EVENT_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")
# Host calls that launch GPU work: the runtime API (cudaLaunchKernel, cudaMemcpyAsync) and the driver API, through
# which Triton's kernels (torch.compile's, torchao's optimizer) are launched (cuLaunchKernel).
LAUNCH_CATEGORIES = ("cuda_runtime", "cuda_driver")
# Kernel families by name, first match wins: cuBLAS/CUTLASS/nvjet GEMMs, the attention kernels (flash, cuDNN, torch's
# varlen), the loss (Unsloth's chunked cross-entropy, torch's), Inductor/Triton fusions of norms, activations and RoPE.
FAMILIES = (
    ("attention", re.compile(r"flash|fmha|attention|attn|sdpa|varlen", re.I)),
    ("cross_entropy", re.compile(r"cross_entropy|crossentropy|log_softmax|nll_loss|logsumexp", re.I)),
    ("matmuls", re.compile(r"gemm|cutlass|nvjet|cublas|xmma|matmul|_mm_|splitk|sm90_|sm80_", re.I)),
    ("norms_activations", re.compile(r"rms|layer_norm|layernorm|rsqrt|silu|swiglu|geglu|gelu|rope|rotary", re.I)),
)


def idle_by_phase(trace: dict, min_gap_us: float = 20.0) -> list[dict]:
    """Per profiled step, from a chrome trace (torch.profiler's export_chrome_trace): wall, GPU-busy and GPU-idle
    milliseconds, idle split by host phase, and each phase's host duration. A step runs from one
    `phase:forward_backward` mark to the next; gaps shorter than min_gap_us are not counted as idle."""
    events = trace["traceEvents"]
    marks = sorted((e["ts"], e["ts"] + e["dur"], e["name"].removeprefix("phase:"))
                   for e in events if e.get("cat") == "user_annotation" and str(e.get("name", "")).startswith("phase:"))
    gpu = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") in GPU_EVENT_CATEGORIES and e.get("ph") == "X")
    starts = [begin for begin, _, name in marks if name == "forward_backward"]
    ends = starts[1:] + [marks[-1][1]] if marks else []  # the last step ends with its last mark
    steps = []
    for index, (begin, end) in enumerate(zip(starts, ends)):
        busy, idle, idle_phase = 0.0, 0.0, {phase: 0.0 for phase in PHASES}
        cursor = begin
        for kernel_begin, kernel_end in gpu:
            if kernel_begin >= end:
                break
            kernel_begin, kernel_end = max(kernel_begin, begin), min(kernel_end, end)
            if kernel_end <= cursor:
                continue
            if kernel_begin - cursor >= min_gap_us:
                idle += kernel_begin - cursor
                _charge(idle_phase, marks, cursor, kernel_begin)
            busy += kernel_end - max(kernel_begin, cursor)
            cursor = kernel_end
        if end - cursor >= min_gap_us:
            idle += end - cursor
            _charge(idle_phase, marks, cursor, end)
        host = {phase: 0.0 for phase in PHASES}
        for mark_begin, mark_end, name in marks:
            if begin <= mark_begin < end and name in host:
                host[name] += mark_end - mark_begin
        steps.append({"step": index, "wall_ms": round((end - begin) / 1e3, 3), "gpu_busy_ms": round(busy / 1e3, 3),
                      "gpu_idle_ms": round(idle / 1e3, 3),
                      "gpu_idle_ms_by_host_phase": {k: round(v / 1e3, 3) for k, v in idle_phase.items()},
                      "host_ms_by_phase": {k: round(v / 1e3, 3) for k, v in host.items()}})
    return steps


def kernel_families(trace: dict) -> dict:
    """Milliseconds of GPU time by family over the whole trace: `optimizer` (kernels the host launched during the
    optimizer phase, found through the launch's correlation id), `copies` (memcpy and memset), then FAMILIES by the
    kernel's name, and `other` (elementwise kernels, reductions, casts). Overlapping kernels each count in full."""
    events = trace["traceEvents"]
    optimizer = [(e["ts"], e["ts"] + e["dur"]) for e in events
                 if e.get("cat") == "user_annotation" and e.get("name") == "phase:optimizer"]
    launched_in_optimizer = {e["args"]["correlation"] for e in events
                             if e.get("cat") in LAUNCH_CATEGORIES and "correlation" in e.get("args", {})
                             and any(begin <= e["ts"] < end for begin, end in optimizer)}
    totals = collections.Counter()
    for event in events:
        if event.get("cat") not in GPU_EVENT_CATEGORIES or event.get("ph") != "X":
            continue
        if event.get("args", {}).get("correlation") in launched_in_optimizer:
            family = "optimizer"
        elif event["cat"] != "kernel":
            family = "copies"
        else:
            family = next((name for name, pattern in FAMILIES if pattern.search(event["name"])), "other")
        totals[family] += event["dur"]
    return {family: round(totals[family] / 1e3, 3)
            for family in ("matmuls", "attention", "norms_activations", "cross_entropy", "optimizer", "copies", "other")}


def _charge(idle_phase: dict, marks: list, begin: float, end: float) -> None:
    """Splits the idle span begin..end over the host phases it overlaps; time outside every mark (the callback's own
    bookkeeping between two marks) goes to log_and_next."""
    charged = 0.0
    for mark_begin, mark_end, name in marks:
        overlap = min(end, mark_end) - max(begin, mark_begin)
        if overlap > 0 and name in idle_phase:
            idle_phase[name] += overlap
            charged += overlap
    idle_phase["log_and_next"] += (end - begin) - charged


def step_profiler(out: str, first: int = 13, last: int = 15):
    """Profiles steps first..last (1-based, as state.global_step after the step); writes out/profile.txt (the 40 ops
    with the most kernel time), out/profile_idle.json (idle_by_phase of each step) and out/profile_families.json
    (kernel_families over the profiled steps, with their total GPU idle time)."""
    import time

    import torch
    from transformers import TrainerCallback

    # Without CUDA (the CPU test) the steps are profiled all the same, and every moment counts as GPU idle.
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)

    def synchronize():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    class StepProfiler(TrainerCallback):
        profiler = None
        phase = None
        started = 0.0

        def _mark(self, name):
            if self.phase is not None:
                self.phase.__exit__(None, None, None)
                self.phase = None
            if self.profiler is not None and name is not None:
                self.phase = torch.profiler.record_function(f"phase:{name}")
                self.phase.__enter__()

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step + 1 == first:
                synchronize()
                self.started = time.perf_counter()
                self.profiler = torch.profiler.profile(activities=activities)
                self.profiler.__enter__()
            elif state.global_step == last and self.profiler is not None:
                self._mark(None)
                self._finish(last - first + 1)
            self._mark("forward_backward")

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self._mark("optimizer")

        def on_optimizer_step(self, args, state, control, **kwargs):
            self._mark("after_optimizer")

        def on_step_end(self, args, state, control, **kwargs):
            self._mark("log_and_next")

        def _finish(self, steps):
            synchronize()
            wall = time.perf_counter() - self.started
            self.profiler.__exit__(None, None, None)
            trace_path = os.path.join(out, "trace.json")
            self.profiler.export_chrome_trace(trace_path)
            with open(trace_path) as f:
                trace = json.load(f)
            idle = idle_by_phase(trace)
            families = kernel_families(trace)
            categories = collections.Counter(event.get("cat") for event in trace["traceEvents"])
            os.remove(trace_path)  # tens of MB a step for an 8B model: only its summary is kept
            with open(os.path.join(out, "profile_idle.json"), "w") as f:
                json.dump(idle, f, indent=2)
            with open(os.path.join(out, "profile_families.json"), "w") as f:
                json.dump({"steps": steps, "gpu_ms_by_family": families,
                           "gpu_idle_ms": round(sum(step["gpu_idle_ms"] for step in idle), 3)}, f, indent=2)
            events = self.profiler.key_averages()
            # From the trace's kernel intervals: the ops' self device time counts a Triton kernel twice (as the op
            # and as the kernel) and the phases' annotations once more, which read 3x the wall time.
            busy = sum(step["gpu_busy_ms"] for step in idle) / 1e3
            sort_by = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
            table = events.table(sort_by=sort_by, row_limit=40, max_name_column_width=70)
            with open(os.path.join(out, "profile.txt"), "w") as f:
                f.write(f"steps {first}-{last}: wall {wall / steps * 1e3:.1f} ms/step (profiler on), "
                        f"GPU kernels {busy / steps * 1e3:.1f} ms/step\ntrace events by category: {dict(categories)}\n")
                for step in idle:
                    f.write(json.dumps(step) + "\n")
                f.write(f"{table}\n")
            self.profiler = None

    return StepProfiler()
