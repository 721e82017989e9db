"""The benchmark's plumbing on CPU with a tiny Llama: every path in its own process, the results file in the
issue's schema, the report's ratios, and a failed run that is listed and fails the command. (The figures
themselves come from the GPU: docs/benchmarks.md.)"""

from __future__ import annotations

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
    run = bench("run", "--paths", "ours,transformers,ours-auto", *common, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    data = json.loads(results.read_text())
    assert {"device", "date", "versions", "records"} <= set(data) and data["versions"]["transformers"]
    assert [r["path"] for r in data["records"]] == ["ours", "transformers", "ours-auto"]
    for r in data["records"]:
        assert SCHEMA <= set(r)
        assert (r["model"], r["method"], r["batch_size"], r["seq_len"], r["steps"]) == ("tiny-llama", "lora", 2, 64, 12)
        assert r["tokens_per_s"] > 0 and r["measured_steps"] == 2 and r["lora_layers"] == 14
        assert r["mfu"] is None  # no GPU, no peak to divide by
    ours = {r["path"]: r for r in data["records"]}["ours"]
    assert ours["backend"] == "transformers"  # --unsloth without a GPU falls back, and the record says so

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
