"""The GPU: its name, memory and bf16 peak, and its clocks, power and throttling while a run is measured
(nvidia-smi sampled every 0.5 s, summarised over the measured steps; bench/throughput.py records it with each run)."""

from __future__ import annotations

import bisect
import datetime
import itertools
import os
import shutil
import statistics
import subprocess

# nvidia-smi's clocks_throttle_reasons bits: 0x4 software power cap; 0x8 hardware slowdown, 0x20 software
# thermal slowdown, 0x40 hardware thermal slowdown, 0x80 hardware power brake.
POWER_CAP = 0x4
THERMAL_OR_HARDWARE = 0x8 | 0x20 | 0x40 | 0x80
SMI_QUERY = "timestamp,clocks.sm,power.draw,clocks_throttle_reasons.active"


# Dense (no sparsity) bf16 tensor-core peak per GPU, vendor datasheets; the first name found in the device's wins.
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("H200 NVL", 835.0), ("H200", 989.4),
                    ("A100", 312.0), ("L40S", 362.1), ("A10G", 70.0), ("L4", 121.0))


def device() -> dict:
    """Name and memory of GPU 0 from nvidia-smi (this process never touches CUDA, so each run has the GPU to itself)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
        name, memory = [part.strip() for part in out.split(",")]
        return {"name": name, "memory_mib": int(memory)}
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError):
        return {"name": "cpu", "memory_mib": None}


def peak_tflops(device_name: str):
    return next((tflops for name, tflops in PEAK_BF16_TFLOPS if name.lower() in device_name.lower()), None)


def start_clock_sampler(path: str):
    """nvidia-smi writing SMI_QUERY every 500 ms to `path` (None where there is no nvidia-smi)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
    with open(path, "w") as out:  # the child keeps its own copy of the file
        return subprocess.Popen([smi, "-i", visible if visible.isdigit() else "0", f"--query-gpu={SMI_QUERY}",
                                 "--format=csv,noheader,nounits", "-lms", "500"], stdout=out, stderr=subprocess.STDOUT)


def clock_summary(lines: list[str], window: list[float] | None, step_s: list[float] | None = None) -> dict | None:
    """The SM clock, power and throttling over the samples taken inside `window` (Unix start and end of the
    measured steps); None without samples there. With the steps' times, also the median clock of the samples
    that fell in the slower half of the steps and in the faster half: if the clock sets the pace, the slower
    steps ran at the lower clock."""
    if not window:
        return None
    samples = []  # (time, SM MHz, W, throttle reasons)
    for line in lines:
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4:
            continue
        try:
            at = datetime.datetime.strptime(fields[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
            sample = (at, float(fields[1]), float(fields[2]), int(fields[3], 16))
        except ValueError:  # a header, an "[N/A]", an error line
            continue
        if window[0] <= at <= window[1]:
            samples.append(sample)
    if not samples:
        return None
    clocks = [c for _, c, _, _ in samples]
    summary = {"samples": len(samples), "sm_mhz_median": statistics.median(clocks), "sm_mhz_min": min(clocks),
               "sm_mhz_max": max(clocks), "power_w_median": statistics.median(p for _, _, p, _ in samples),
               "power_capped_share": round(sum(1 for *_, r in samples if r & POWER_CAP) / len(samples), 3),
               "thermal_or_hardware_slowdown_share":
                   round(sum(1 for *_, r in samples if r & THERMAL_OR_HARDWARE) / len(samples), 3)}
    if step_s:
        ends = list(itertools.accumulate(step_s, initial=window[0]))[1:]
        middle = statistics.median(step_s)
        halves = {"slower": [], "faster": []}
        for at, clock, _, _ in samples:
            step = min(bisect.bisect_left(ends, at), len(step_s) - 1)
            halves["slower" if step_s[step] > middle else "faster"].append(clock)
        for half, found in halves.items():
            summary[f"sm_mhz_median_{half}_steps"] = statistics.median(found) if found else None
    return summary
