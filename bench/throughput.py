"""Throughput and peak memory of one workload through four paths, each run in its own process.

    python bench/throughput.py run [--workload dense|instruct] [--models llama-3.2-1b,llama-3.1-8b]
                                   [--methods qlora,lora,full] [--steps 40] [--repeats 1]
                                   [--paths ours,unsloth-script,transformers,ours-auto,ours-transformers]
    python bench/throughput.py report bench/results/<date>-<device>.json      # markdown table and ratios

Paths (workload.py holds the shared settings):
- `ours`: the `aitraining llm --train` CLI (run as `python -m autotrain_unsloth.cli`) with `--unsloth` and
  every automatic setting off (`--no-auto-gradient-checkpointing --no-auto-optimizer`): Unsloth's own
  defaults, to measure our overhead;
- `ours-auto`: the same command with our automatic settings left on (the default);
- `ours-transformers`: the same command without `--unsloth`: our transformers path, automatic settings on;
- `unsloth-script`: bench/unsloth_script.py, a minimal hand-written Unsloth script;
- `transformers`: bench/transformers_script.py, plain transformers + PEFT + TRL.
Workloads (workload.py): `dense`, every sequence a full 2,048-token block; `instruct`, instruction-length rows
(log-normal lengths, median 250 tokens), batched as each path batches them. Records name their workload.
Every path counts tokens and time with the same callback (autotrain_unsloth/trainers/throughput.py):
non-padding tokens over the steps after 10 warm-up steps, GPU synchronised at step ends; peak memory is
torch.cuda.max_memory_allocated over loading and training.

MFU = tokens/s x FLOPs per token / the GPU's dense bf16 peak. FLOPs per token, with N the weights that
multiply every token (decoder projections and output head; not the embedding lookup, not attention's
score and value products), 2 FLOPs per weight for each of forward, input gradients, weight gradients:
full fine-tuning 6·N; LoRA and QLoRA 4·N + 6·N_lora (frozen weights get no weight gradient; a QLoRA
dequantisation is not counted). Recomputation under gradient checkpointing is not counted: MFU counts the
model's work, not the hardware's.

Results are merged into the results file record by record (model, method, path); failed runs are listed under
`failures` and make the command exit 1.
`--repeats N` runs every path N times per cell, rotating which path goes first; the record is the median
run's, and `runs_tokens_per_s` lists them all (1B runs differ by up to 15% from one run to the next).
Where nvidia-smi is found, the GPU's SM clock, power and throttle reasons are sampled every half second; the
record's `gpu_clocks` sums up those inside the measured steps, the slower and faster half of the steps apart
(docs/benchmarks.md; bench/step_profile.py says where a step waits).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, REPO)

from clocks import clock_summary, device, peak_tflops, start_clock_sampler  # noqa: E402
from records import from_log_history, median_run, merge, results_path  # noqa: E402
from report import report  # noqa: E402
from workload import INSTRUCT, METHODS, PATHS, PROJECTIONS, SETTINGS, SHAPES, WORKLOADS, write_data, write_instruct_data  # noqa: E402

from autotrain_unsloth.memory import ModelShape  # noqa: E402


def flops_per_token(model: str, method: str) -> float:
    shape = ModelShape.from_config({"model_type": "llama", **SHAPES[model]})
    n = shape.matmul_parameters
    if method == "full":
        return 6.0 * n
    return 4.0 * n + 6.0 * shape.lora_parameters(SETTINGS["lora_r"], PROJECTIONS)


def command(path: str, model_dir: str, data_dir: str, method: str, steps: int, project: str, args) -> list[str]:
    if path in ("unsloth-script", "transformers"):
        script = os.path.join(BENCH, "unsloth_script.py" if path == "unsloth-script" else "transformers_script.py")
        return [sys.executable, script, "--model", model_dir, "--data", os.path.join(data_dir, "train.jsonl"),
                "--method", method, "--steps", str(steps), "--out", project, "--optimizer", args.optimizer,
                "--seq-len", str(args.seq_len), "--gradient-accumulation", str(args.gradient_accumulation)]
    s = SETTINGS
    cli = [sys.executable, "-m", "autotrain_unsloth.cli", "llm", "--train", "--model", model_dir, "--data-path", data_dir,
           "--project-name", os.path.basename(project), "--trainer", "sft", "--mixed-precision", "bf16",
           "--block-size", str(args.seq_len), "--model-max-length", str(args.seq_len), "--batch-size", str(s["batch_size"]),
           "--gradient-accumulation", str(args.gradient_accumulation), "--optimizer", args.optimizer, "--lr", str(s["lr"]),
           "--weight-decay", str(s["weight_decay"]), "--scheduler", "linear", "--warmup-ratio", "0", "--seed", str(s["seed"]),
           "--max-steps", str(steps), "--logging-steps", "1"]
    if method == "full":
        cli += ["--full-finetuning", "--quantization", "none"]
    else:
        cli += ["--peft", "--quantization", "int4" if method == "qlora" else "none", "--lora-r", str(s["lora_r"]),
                "--lora-alpha", str(s["lora_alpha"]), "--lora-dropout", str(s["lora_dropout"]),
                "--target-modules", ",".join(PROJECTIONS)]
    if path != "ours-transformers":
        cli += ["--unsloth"]
    if path == "ours":  # Unsloth's own defaults: every automatic setting off
        cli += ["--no-auto-gradient-checkpointing", "--no-auto-optimizer", "--no-auto-packed-attention"]
    else:  # ours-auto, ours-transformers
        cli += shlex.split(args.ours_auto_args)
    return cli


def collect(path: str, project: str) -> dict:
    """What a finished run measured, and what it really trained (from its own files)."""
    if path in ("unsloth-script", "transformers"):
        with open(os.path.join(project, "result.json")) as f:
            result = json.load(f)
        return {"throughput": result["throughput"], "loaded": result["loaded"], "log_history": result.get("log_history", []),
                "gradient_checkpointing": result["gradient_checkpointing"], "estimated_peak_gib": None,
                "backend": "unsloth" if path == "unsloth-script" else "transformers", "optimizer_ran": None}
    with open(os.path.join(project, "run_summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(project, "plan.json")) as f:
        plan = json.load(f)
    with open(os.path.join(project, "trainer_state.json")) as f:
        log_history = json.load(f)["log_history"]
    return {"throughput": summary["throughput"], "log_history": log_history, "loaded": plan["verified"],
            "packed_attention": plan.get("packed_attention"),
            "gradient_checkpointing": plan["gradient_checkpointing"], "backend": plan["backend"],
            "estimated_peak_gib": (plan.get("memory_estimate_gib") or {}).get("total"),
            "optimizer_state_offload": plan.get("optimizer_state_offload"), "batch_ran": plan.get("batch_size"),
            "optimizer_state_resident_gib": plan.get("optimizer_state_resident_gib", 0.0),
            "optimizer_ran": plan["optimizer"], "processes": plan["num_processes"], "liger": plan.get("liger", False)}


def record(model: str, method: str, path: str, measured: dict, steps: int, args, gpu: dict, wall_s: float) -> dict:
    speed = measured["throughput"]
    tflops = peak_tflops(gpu["name"])
    tokens_per_s = speed["tokens_per_s"]
    processes = measured.get("processes", 1)  # tokens/s counts every GPU's tokens; MFU is per GPU
    mfu = (round(tokens_per_s * flops_per_token(model, method) / (tflops * 1e12 * processes), 4)
           if tflops and tokens_per_s else None)
    loaded = measured["loaded"]
    offloaded = measured.get("optimizer_state_offload", args.script_state_offload)
    return {
        "workload": args.workload, **({"workload_spec": INSTRUCT} if args.workload == "instruct" else {}),
        "model": model, "method": method, "path": path, "tokens_per_s": tokens_per_s,
        "peak_gib": speed["peak_gib"], "mfu": mfu,
        **from_log_history(measured.get("log_history", []), speed["warmup_steps"]),
        "batch_size": SETTINGS["batch_size"], "seq_len": args.seq_len, "steps": steps,
        "gradient_accumulation": args.gradient_accumulation,
        "optimizer_state_offload": offloaded,
        "optimizer_state_resident_gib": measured.get("optimizer_state_resident_gib", 0.0),
        "optimizer_state_offload_by": ("unsloth" if path == "unsloth-script" else "ours") if offloaded else None,
        "processes": processes,  # one per GPU; tokens/s counts every process's tokens
        # what ran, and how it was measured
        "backend": measured["backend"], "gradient_checkpointing": measured["gradient_checkpointing"],
        "warmup_steps": speed["warmup_steps"], "measured_steps": speed["measured_steps"],
        "median_step_s": speed["median_step_s"], "train_peak_gib": speed["train_peak_gib"],
        "load_peak_gib": speed["load_peak_gib"], "estimated_peak_gib": measured["estimated_peak_gib"],
        "train_reserved_peak_gib": speed.get("train_reserved_peak_gib"), "alloc_retries": speed.get("alloc_retries"),
        "step_s": speed.get("step_s"), "measured_window_unix": speed.get("measured_window_unix"), "gpu_clocks": None,
        "linear_4bit_layers": loaded["linear_4bit_layers"], "lora_layers": loaded["lora_layers"],
        "trainable_parameters": loaded["trainable_parameters"], "parameters": loaded["parameters"],
        "optimizer": args.optimizer, "optimizer_ran": measured["optimizer_ran"] or args.optimizer,
        "packed_attention": measured.get("packed_attention"), "packed_attention_ran": loaded.get("packed_attention"),
        "packed_attention_calls": loaded.get("packed_attention_calls"), "liger": measured.get("liger", False),
        "wall_s": round(wall_s, 1), "invocation": args.invocation,
        **({"ours_auto_args": args.ours_auto_args} if path in ("ours-auto", "ours-transformers") and args.ours_auto_args
           else {}),
    }


def run_one(name, model, method, path, model_dir, data_dir, runs, env, args, gpu) -> tuple[dict | None, dict | None]:
    """One run in its own process: (record, None), or (None, failure with the log's tail)."""
    project = os.path.join(runs, name)
    shutil.rmtree(project, ignore_errors=True)
    os.makedirs(project)
    log = os.path.join(runs, name + ".log")
    started = time.time()
    sampler = start_clock_sampler(os.path.join(runs, name + ".smi.csv"))
    try:
        with open(log, "w") as f:
            if path in ("unsloth-script", "transformers") and args.script_state_offload:
                env = {**env, "UNSLOTH_OFFLOAD_OPTIMIZER_STATE": "1"}
            code = subprocess.run(command(path, model_dir, data_dir, method, args.steps, project, args),
                                  cwd=runs, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=args.run_timeout).returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    finally:
        if sampler:
            sampler.terminate()
            sampler.wait()
    wall = time.time() - started
    entry = failure = None
    if code == 0:
        entry = record(model, method, path, collect(path, project), args.steps, args, gpu, wall)
        if sampler:
            with open(os.path.join(runs, name + ".smi.csv")) as f:
                entry["gpu_clocks"] = clock_summary(f.read().splitlines(), entry["measured_window_unix"], entry["step_s"])
        print(f"{name}: {entry['tokens_per_s']} tokens/s, peak {entry['peak_gib']} GiB, mfu {entry['mfu']}, "
              f"checkpointing {entry['gradient_checkpointing']}, 4-bit layers {entry['linear_4bit_layers']}, "
              f"{wall:.0f} s", flush=True)
    else:
        with open(log) as f:
            tail = f.read()[-4000:]
        failure = {"workload": args.workload, "model": model, "method": method, "path": path, "returncode": code,
                   "log_tail": tail}
        print(f"{name}: FAILED ({code}), log {log}\n{tail[-1500:]}", flush=True)
    if not args.keep_outputs:  # weights are large: drop them, keep what a re-run of the job needs
        for item in os.listdir(project):
            full = os.path.join(project, item)
            if os.path.isdir(full) and item.startswith("checkpoint-"):
                shutil.rmtree(full)
            elif item.endswith((".safetensors", ".bin", ".pt")):
                os.remove(full)
    return entry, failure


def run(args) -> int:
    gpu = device()
    date = args.date or datetime.date.today().isoformat()
    out = args.results or results_path(gpu, date)
    workdir = os.path.abspath(args.workdir)
    runs = os.path.join(workdir, "runs")
    os.makedirs(runs, exist_ok=True)
    # UNSLOTH_LOG_MFU: Unsloth's trainers log their own MFU count, recorded beside ours (records.unsloth_mfu)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "UNSLOTH_DISABLE_STATISTICS": "1", "PYTHONUNBUFFERED": "1",
           "UNSLOTH_LOG_MFU": "1",
           "UNSLOTH_COMPILE_LOCATION": os.path.join(workdir, "unsloth_compiled_cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))}
    if args.workload == "instruct":
        data_dir = os.path.join(workdir, "data-instruct")
        if not os.path.isfile(os.path.join(data_dir, "train.jsonl")):
            write_instruct_data(data_dir)
    else:
        data_dir = os.path.join(workdir, f"data-{args.seq_len}-x{args.gradient_accumulation}")
        if not os.path.isfile(os.path.join(data_dir, "train.jsonl")):
            write_data(data_dir, rows=SETTINGS["batch_size"] * args.gradient_accumulation * (args.steps + 4),
                       words_per_row=args.seq_len + 64)

    failures = []
    for model in args.models:
        model_dir = os.path.join(os.path.abspath(args.models_dir or os.path.join(workdir, "models")), model)
        if not os.path.isfile(os.path.join(model_dir, "BENCH_MODEL")):
            started = time.time()
            subprocess.run([sys.executable, os.path.join(BENCH, "workload.py"), "build", "--model", model, "--out", model_dir],
                           check=True, env=env)
            print(f"built {model} in {time.time() - started:.0f} s", flush=True)
        for method in args.methods:
            measured, failed = {path: [] for path in args.paths}, set()
            for repeat in range(args.repeats):
                # Each repeat starts one path later, so no path always runs first (1B runs drift with order).
                shift = repeat % len(args.paths)
                for path in args.paths[shift:] + args.paths[:shift]:
                    name = (("instruct-" if args.workload == "instruct" else "") + f"{model.replace('.', '')}-{method}-{path}"
                            + (f"-r{repeat + 1}" if args.repeats > 1 else ""))
                    entry, failure = run_one(name, model, method, path, model_dir, data_dir, runs, env, args, gpu)
                    if failure:  # the cell is a failure, whatever its other runs did
                        failures.append(failure)
                        failed.add(path)
                        merge(out, gpu, date, [], [failure])
                    elif path not in failed:
                        measured[path].append(entry)
                        merge(out, gpu, date, [median_run(measured[path])], [])
    print(f"results: {out}", flush=True)
    return 1 if failures else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="run the benchmark")
    go.add_argument("--workload", choices=WORKLOADS, default="dense", help="dense: full 2,048-token blocks; "
                    "instruct: instruction-length rows (workload.INSTRUCT)")
    go.add_argument("--models", type=lambda s: s.split(","), default=["llama-3.2-1b", "llama-3.1-8b"])
    go.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS))
    go.add_argument("--paths", type=lambda s: s.split(","), default=list(PATHS))
    go.add_argument("--steps", type=int, default=40, help="optimizer steps per run; the first 10 are warm-up")
    go.add_argument("--repeats", type=int, default=1, help="runs per path and cell, the order of paths rotated each "
                    "time; the record is the median run's, with every run's tokens/s")
    go.add_argument("--seq-len", type=int, default=SETTINGS["seq_len"])
    go.add_argument("--optimizer", default=SETTINGS["optimizer"])
    go.add_argument("--gradient-accumulation", type=int, default=SETTINGS["gradient_accumulation"])
    go.add_argument("--script-state-offload", action="store_true", help="run the hand-written scripts with "
                    "UNSLOTH_OFFLOAD_OPTIMIZER_STATE=1 (Unsloth's optimizer-state offload, for models that need it)")
    go.add_argument("--workdir", default="/tmp/autotrain-unsloth-bench", help="models, data and run folders")
    go.add_argument("--models-dir", help="where the random-init models are written (default WORKDIR/models): another "
                    "disk where one holds only the model or its fine-tuned copy")
    go.add_argument("--results", help="results file (default bench/results/<date>-<device>.json)")
    go.add_argument("--date", help="date for the results file name (default today)")
    go.add_argument("--run-timeout", type=int, default=900, help="seconds one run may take")
    go.add_argument("--invocation", help="a label for this invocation, recorded in each record: the report marks "
                    "ratios between records of different labels")
    go.add_argument("--keep-outputs", action="store_true", help="keep the runs' saved weights")
    go.add_argument("--ours-auto-args", default="", help="extra CLI flags for ours-auto and ours-transformers, for diagnostics "
                    "(e.g. '--ours-auto-args=--no-auto-optimizer', with '='); write those runs to their own --results file")
    show = sub.add_parser("report", help="print the markdown table of a results file")
    show.add_argument("results")
    args = parser.parse_args(argv)
    if args.command == "report":
        with open(args.results) as f:
            print(report(json.load(f)))
        return 0
    choices = (("models", SHAPES, args.models), ("methods", METHODS, args.methods), ("paths", PATHS, args.paths))
    for name, allowed, given in choices:
        unknown = [value for value in given if value not in allowed]
        if unknown:
            parser.error(f"--{name}: unknown {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
