"""The benchmark's results file: one record per (workload, model, method, path, processes), merged run by run,
with the versions it ran with."""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys

from workload import METHODS, PATHS, SHAPES, WORKLOADS

BENCH = os.path.dirname(os.path.abspath(__file__))
VERSIONS = ("torch", "transformers", "unsloth", "unsloth_zoo", "trl", "peft", "accelerate", "bitsandbytes", "datasets",
            "torchao")


def versions() -> dict:
    found = {}
    for name in VERSIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = sys.version.split()[0]
    return found


def results_path(gpu: dict, date: str) -> str:
    slug = gpu["name"].lower().replace("nvidia ", "").replace(" ", "-")
    return os.path.join(BENCH, "results", f"{date}-{slug}.json")


def workload_of(record: dict) -> str:
    return record.get("workload", "dense")  # records made before the instruct workload existed


def invocation_of(record: dict):
    return record.get("invocation", record.get("device_call"))  # earlier records name it device_call


def merge(path: str, gpu: dict, date: str, new_records: list[dict], failures: list[dict]) -> dict:
    results = {"device": gpu["name"], "date": date, "versions": versions(), "records": [], "failures": []}
    if os.path.isfile(path):
        with open(path) as f:
            results = {**json.load(f), "versions": results["versions"]}
    key = lambda r: (workload_of(r), r["model"], r["method"], r["path"], r.get("processes", 1))  # noqa: E731
    replaced = {key(r) for r in new_records + failures}
    results["records"] = [r for r in results["records"] if key(r) not in replaced] + new_records
    results["failures"] = [r for r in results.get("failures", []) if key(r) not in replaced] + failures
    order = {name: i for i, name in enumerate(list(WORKLOADS) + list(SHAPES) + list(METHODS) + list(PATHS))}
    results["records"].sort(key=lambda r: (*(order[part] for part in key(r)[:4]), key(r)[4]))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(path + ".tmp", path)
    return results


def median_run(entries: list[dict]) -> dict:
    """A cell's record: the run with the median tokens/s (the lower middle of an even count), with every
    run's tokens/s in run order."""
    middle = sorted(entries, key=lambda e: e["tokens_per_s"])[(len(entries) - 1) // 2]
    return {**middle, "runs_tokens_per_s": [e["tokens_per_s"] for e in entries]}


def from_log_history(log_history: list, warmup_steps: int) -> dict:
    """What a record keeps of a run's log: Unsloth's MFU count and the loss curve."""
    return {"unsloth_mfu": unsloth_mfu(log_history, warmup_steps), "losses": loss_curve(log_history)}


def loss_curve(log_history: list) -> list:
    """The training loss of every logged step, in order (the runs log every step): what FP8 is judged by."""
    return [round(entry["loss"], 4) for entry in log_history if "loss" in entry and "eval_loss" not in entry]


def unsloth_mfu(log_history: list, warmup_steps: int):
    """The median of the MFU Unsloth's own callback logged (UNSLOTH_LOG_MFU=1, unsloth/utils/mfu.py) over the steps
    our throughput callback measured: it counts every linear's FLOPs, the recomputed forward when checkpointing and
    the attention pairs, where ours counts the model's 6N (LoRA: 4N + the adapter's 6n) a token. None when absent."""
    values = [entry["train_mfu"] for entry in log_history if "train_mfu" in entry and entry.get("step", 0) > warmup_steps]
    return round(sorted(values)[len(values) // 2], 4) if values else None
