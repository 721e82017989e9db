"""The benchmark's plumbing on CPU with a tiny Llama: every path in its own process, the results file in the
issue's schema, the report's ratios, and a failed run that is listed and fails the command. (The figures
themselves come from the GPU: docs/benchmarks.md.)"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow
SCHEMA = {"model", "method", "path", "tokens_per_s", "peak_gib", "mfu", "batch_size", "seq_len", "steps"}


def bench(*args, cwd):
    return subprocess.run([sys.executable, os.path.join(REPO, "bench", "throughput.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)


def test_bench_runs_each_path_and_writes_the_results_file(tmp_path):
    results = tmp_path / "results.json"
    common = ["--models", "tiny-llama", "--methods", "lora", "--steps", "12", "--seq-len", "64",
              "--optimizer", "adamw_torch", "--workdir", str(tmp_path / "work"), "--results", str(results)]
    run = bench("run", "--paths", "ours,transformers,ours-auto", "--ours-auto-args=--no-auto-optimizer", *common,
                cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    data = json.loads(results.read_text())
    assert {"device", "date", "versions", "records"} <= set(data) and data["versions"]["transformers"]
    assert [r["path"] for r in data["records"]] == ["ours", "transformers", "ours-auto"]
    for r in data["records"]:
        assert SCHEMA <= set(r)
        assert (r["model"], r["method"], r["batch_size"], r["seq_len"], r["steps"]) == ("tiny-llama", "lora", 2, 64, 12)
        assert r["tokens_per_s"] > 0 and r["measured_steps"] == 2 and r["lora_layers"] == 14
        assert r["unsloth_mfu"] is None  # Unsloth's own MFU count is logged on its path only
        assert r["mfu"] is None  # no GPU, no peak to divide by
        start, end = r["measured_window_unix"]
        assert 0 < end - start < r["wall_s"] and len(r["step_s"]) == r["measured_steps"]
        assert r["gpu_clocks"] is None  # no nvidia-smi here
    ours = {r["path"]: r for r in data["records"]}["ours"]
    assert ours["backend"] == "transformers"  # --unsloth without a GPU falls back, and the record says so
    assert [r["optimizer_ran"] for r in data["records"]] == ["adamw_torch"] * 3
    assert data["records"][2]["ours_auto_args"] == "--no-auto-optimizer" and "ours_auto_args" not in ours
    # `ours` runs with every automatic setting off; ours-auto got the extra flag
    for name in ("tiny-llama-lora-ours", "tiny-llama-lora-ours-auto"):
        asked = json.loads((tmp_path / "work" / "runs" / name / "plan.json").read_text())["asked"]
        assert asked["auto_optimizer"] is False
        assert asked["auto_gradient_checkpointing"] is (name.endswith("-auto"))

    report = bench("report", str(results), cwd=tmp_path)
    assert report.returncode == 0 and "| tiny-llama | lora | - | " in report.stdout

    # A path that cannot run here (Unsloth's script without a GPU) is listed as a failure and fails the command.
    failed = bench("run", "--paths", "unsloth-script", *common, cwd=tmp_path)
    assert failed.returncode == 1
    data = json.loads(results.read_text())
    assert [(f["path"], f["returncode"] != 0) for f in data["failures"]] == [("unsloth-script", True)]
    assert len(data["records"]) == 3  # the earlier records are kept


def test_bench_rejects_unknown_names(tmp_path):
    result = bench("run", "--paths", "ours,fast", cwd=tmp_path)
    assert result.returncode == 2 and "unknown fast" in result.stderr


def test_report_marks_ratios_from_different_invocations():
    sys.path.insert(0, os.path.join(REPO, "bench"))
    from report import report

    def record(path, tokens_per_s, call):
        return {"model": "llama-3.1-8b", "method": "full", "path": path, "tokens_per_s": tokens_per_s, "peak_gib": 50.0,
                "mfu": 0.3, "steps": 40, "warmup_steps": 10, "gradient_checkpointing": "off", "optimizer": "adamw_8bit",
                "linear_4bit_layers": 0, "invocation": call}

    results = {"device": "GPU", "date": "d", "versions": {}, "records": [
        record("ours", 990.0, 1), record("unsloth-script", 1000.0, 1), record("ours-auto", 1300.0, 2)]}
    text = report(results)
    assert "| llama-3.1-8b | full | 0.990 | - | 1.300+ | 50.00 |" in text
    assert "`+`: the two runs were made in different invocations" in text
    assert "GPU during the measured steps" not in text  # no run was sampled

    results["records"][2]["gpu_clocks"] = {
        "samples": 60, "sm_mhz_median": 1750.0, "sm_mhz_min": 1590.0, "sm_mhz_max": 1965.0, "power_w_median": 640.4,
        "power_capped_share": 0.967, "thermal_or_hardware_slowdown_share": 0.0,
        "sm_mhz_median_slower_steps": 1635.0, "sm_mhz_median_faster_steps": 1950.0}
    text = report(results)
    assert "| llama-3.1-8b | full | ours-auto | 1,750 (1,590-1,965) | 1,635 / 1,950 | 640 | 97% | 0% |" in text


def test_repeats_rotate_the_paths_and_record_the_median_run(tmp_path):
    results = tmp_path / "results.json"
    run = bench("run", "--models", "tiny-llama", "--methods", "lora", "--paths", "ours,transformers", "--repeats", "2",
                "--steps", "12", "--seq-len", "64", "--optimizer", "adamw_torch", "--workdir", str(tmp_path / "work"),
                "--results", str(results), cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    order = [line.split(":")[0] for line in run.stdout.splitlines() if "tokens/s" in line]
    assert order == ["tiny-llama-lora-ours-r1", "tiny-llama-lora-transformers-r1",
                     "tiny-llama-lora-transformers-r2", "tiny-llama-lora-ours-r2"]
    data = json.loads(results.read_text())
    assert [r["path"] for r in data["records"]] == ["ours", "transformers"]
    for r in data["records"]:
        runs = r["runs_tokens_per_s"]
        assert len(runs) == 2 and r["tokens_per_s"] == min(runs)  # the lower middle of an even count
    report = bench("report", str(results), cwd=tmp_path)
    assert "(2 runs: " in report.stdout


def test_clock_summary_keeps_the_samples_inside_the_measured_steps():
    """nvidia-smi's own lines (csv, noheader, nounits), as sampled on the H100 during an 8B full run."""
    sys.path.insert(0, os.path.join(REPO, "bench"))
    from clocks import clock_summary

    lines = ["2026/11/23 14:53:26.960, 1665, 321.76, 0x0000000000000004",  # before the window
             "2026/11/23 14:53:30.961, 1965, 589.74, 0x0000000000000004",
             "2026/11/23 14:53:31.461, 1620, 652.43, 0x0000000000000004",
             "2026/11/23 14:53:31.961, 1980, 350.83, 0x0000000000000000",
             "2026/11/23 14:53:32.461, [N/A], [N/A], [N/A]",  # a failed read is skipped
             "2026/11/23 14:53:32.961, 1500, 700.10, 0x0000000000000044",  # power cap and thermal
             "2026/11/23 14:53:40.962, 345, 74.37, 0x0000000000000001"]  # after it (idle)
    window = [datetime.datetime.strptime(text, "%Y/%m/%d %H:%M:%S.%f").timestamp()
              for text in ("2026/11/23 14:53:30.000", "2026/11/23 14:53:33.000")]
    summary = clock_summary(lines, window)
    assert summary == {"samples": 4, "sm_mhz_median": 1792.5, "sm_mhz_min": 1500.0, "sm_mhz_max": 1980.0,
                       "power_w_median": pytest.approx(621.085), "power_capped_share": 0.75,
                       "thermal_or_hardware_slowdown_share": 0.25}
    # Steps of 1.2, 1.0 and 0.8 s from the window's start: the first (slower than the median) holds the sample at
    # 1965 MHz, the other two the samples at 1620, 1980 and 1500.
    by_step = clock_summary(lines, window, [1.2, 1.0, 0.8])
    assert (by_step["sm_mhz_median_slower_steps"], by_step["sm_mhz_median_faster_steps"]) == (1965.0, 1620.0)
    assert clock_summary(lines, [window[1] + 1, window[1] + 2]) is None  # no sample inside
    assert clock_summary(lines, None) is None  # a run without a measured window


def _trace(marks, kernels):
    events = [{"ph": "X", "cat": "user_annotation", "name": f"phase:{name}", "ts": begin, "dur": end - begin}
              for name, begin, end in marks]
    events += [{"ph": "X", "cat": "kernel", "name": "k", "ts": begin, "dur": end - begin} for begin, end in kernels]
    events += [{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 500}]  # not a GPU event
    return {"traceEvents": events}


def test_idle_by_phase_splits_gpu_gaps_over_the_host_phases():
    sys.path.insert(0, os.path.join(REPO, "bench"))
    from step_profile import idle_by_phase

    marks = [("forward_backward", 0, 100), ("optimizer", 100, 150), ("after_optimizer", 150, 160), ("log_and_next", 160, 200),
             ("forward_backward", 200, 300), ("optimizer", 300, 310), ("after_optimizer", 310, 320), ("log_and_next", 320, 400)]
    # Step 0: busy 0-95 (two overlapping kernels), idle 95-130 (5 in forward_backward, 30 in optimizer), busy 130-180,
    # busy 195-200, idle 180-195 (log_and_next). Step 1: one kernel 210-390 and a kernel from step 0's window that spills in.
    kernels = [(0, 90), (50, 95), (130, 180), (195, 210), (210, 390)]
    first, second = idle_by_phase(_trace(marks, kernels), min_gap_us=0)
    assert first["wall_ms"] == 0.2 and first["gpu_busy_ms"] == 0.15 and first["gpu_idle_ms"] == 0.05
    assert first["gpu_idle_ms_by_host_phase"] == {"forward_backward": 0.005, "optimizer": 0.03, "after_optimizer": 0.0,
                                                  "log_and_next": 0.015}
    assert first["host_ms_by_phase"] == {"forward_backward": 0.1, "optimizer": 0.05, "after_optimizer": 0.01,
                                         "log_and_next": 0.04}
    assert second["gpu_busy_ms"] == 0.19 and second["gpu_idle_ms"] == 0.01
    assert second["gpu_idle_ms_by_host_phase"]["log_and_next"] == 0.01
    # Short gaps are not idle time.
    assert idle_by_phase(_trace(marks, kernels), min_gap_us=25)[0]["gpu_idle_ms"] == 0.035


def test_kernel_families_split_gpu_time_by_what_ran_and_when_it_was_launched():
    sys.path.insert(0, os.path.join(REPO, "bench"))
    from step_profile import kernel_families

    def kernel(name, begin, dur, correlation, cat="kernel"):
        return {"ph": "X", "cat": cat, "name": name, "ts": begin, "dur": dur, "args": {"correlation": correlation}}

    def launch(at, correlation, cat="cuda_runtime"):
        return {"ph": "X", "cat": cat, "name": "cudaLaunchKernel", "ts": at, "dur": 1, "args": {"correlation": correlation}}

    events = [{"ph": "X", "cat": "user_annotation", "name": "phase:forward_backward", "ts": 0, "dur": 100},
              {"ph": "X", "cat": "user_annotation", "name": "phase:optimizer", "ts": 100, "dur": 50},
              launch(1, 1), kernel("sm90_xmma_gemm_bf16bf16_bf16f32", 10, 4000, 1),
              launch(2, 2), kernel("pytorch_flash::flash_fwd_kernel", 20, 2000, 2),
              launch(3, 3), kernel("triton_per_fused__to_copy_add_mean_mul_pow_rsqrt_0", 30, 500, 3),
              launch(4, 4), kernel("_chunked_cross_entropy_forward", 40, 300, 4),
              launch(5, 5), kernel("void at::native::vectorized_elementwise_kernel<4>", 50, 100, 5),
              launch(6, 6), kernel("Memcpy HtoD (Pinned -> Device)", 60, 700, 6, cat="gpu_memcpy"),
              # Launched while the host was in the optimizer phase: the optimizer, whatever its name (a GEMM-like one
              # here), and a copy it made counts there too.
              launch(110, 7), kernel("kOptimizer32bit2State_gemm_like", 200, 900, 7),
              launch(120, 8), kernel("Memcpy DtoH (Device -> Pinned)", 210, 800, 8, cat="gpu_memcpy"),
              # A Triton kernel (torchao's compiled AdamW8bit) is launched through the driver API.
              launch(130, 9, cat="cuda_driver"), kernel("triton_poi_fused__to_copy_add_lerp_mul_0", 220, 400, 9),
              kernel("no launch recorded", 300, 50, 99)]
    assert kernel_families({"traceEvents": events}) == {
        "matmuls": 4.0, "attention": 2.0, "norms_activations": 0.5, "cross_entropy": 0.3, "optimizer": 2.1,
        "copies": 0.7, "other": 0.15}


def test_step_profiler_marks_the_phases_of_real_trainer_steps(tmp_path, models, texts):
    sys.path.insert(0, os.path.join(REPO, "bench"))
    from datasets import Dataset
    from step_profile import PHASES, step_profiler
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(models["llama"])
    rows = Dataset.from_dict({"text": texts[:16]}).map(lambda row: tokenizer(row["text"], truncation=True, max_length=32),
                                                         remove_columns=["text"])
    out = str(tmp_path)
    trainer = Trainer(model=AutoModelForCausalLM.from_pretrained(models["llama"]), train_dataset=rows,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
                      callbacks=[step_profiler(out, first=2, last=4)],
                      args=TrainingArguments(output_dir=out, max_steps=6, per_device_train_batch_size=2, logging_steps=1,
                                             report_to="none", save_strategy="no", use_cpu=True))
    trainer.train()
    with open(os.path.join(out, "profile_idle.json")) as f:
        steps = json.load(f)
    assert len(steps) == 3
    for step in steps:
        assert all(step["host_ms_by_phase"][phase] > 0 for phase in PHASES)
        # Without a GPU every moment of the step is GPU idle, and the phases account for all of it.
        assert step["gpu_busy_ms"] == 0 and abs(step["gpu_idle_ms"] - step["wall_ms"]) < 0.02
        assert abs(sum(step["gpu_idle_ms_by_host_phase"].values()) - step["gpu_idle_ms"]) < 0.02
    assert "steps 2-4" in open(os.path.join(out, "profile.txt")).read()
    with open(os.path.join(out, "profile_families.json")) as f:
        families = json.load(f)
    # No GPU: no kernel time in any family, and the idle time is the steps' own.
    assert set(families["gpu_ms_by_family"].values()) == {0.0}
    assert families["gpu_idle_ms"] == round(sum(step["gpu_idle_ms"] for step in steps), 3)


def test_unsloths_own_mfu_is_the_median_over_the_measured_steps():
    sys.path.insert(0, os.path.join(REPO, "bench"))
    from records import unsloth_mfu

    history = [{"loss": 2.0, "step": step, "train_mfu": mfu} for step, mfu in [(1, 0.05), (2, 0.30), (3, 0.41),
                                                                                 (4, 0.39), (5, 0.40)]]
    history.append({"train_runtime": 9.0, "step": 5})
    assert unsloth_mfu(history, warmup_steps=2) == 0.40
    assert unsloth_mfu([{"loss": 1.0, "step": 3}], warmup_steps=0) is None


def test_a_record_keeps_the_loss_of_every_logged_step_and_not_the_evaluations():
    sys.path.insert(0, os.path.join(REPO, "bench"))
    from records import from_log_history

    history = [{"loss": 2.123456, "step": 1}, {"eval_loss": 1.9, "step": 1}, {"loss": 1.5, "step": 2, "train_mfu": 0.3},
               {"train_runtime": 5.0, "step": 2}]
    assert from_log_history(history, warmup_steps=1) == {"unsloth_mfu": 0.3, "losses": [2.1235, 1.5]}
