"""The GPU kernels for packed rows keep documents apart, and the jobs run what the plan chose.

- transformers path: our `torch_varlen` attention (torch's varlen_attn) gives each document of a packed row
  the loss it has alone, within bf16 rounding, and the same losses as sdpa under the block-diagonal mask;
- Unsloth path: with torch's varlen_attn under Unsloth's dispatch, Unsloth's varlen route and its
  per-document SDPA agree on the 8B shape, and an sft run with `--unsloth` records that route as what ran;
- Unsloth full fine-tuning (FastModel, transformers' modelling code) runs packed rows through `torch_varlen`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.gpu.test_unsloth_gpu import common_flags, losses, pytestmark, run_cli, torch  # noqa: F401  (the same marks)
from tests.test_packing import per_token_losses

DOCUMENT_LENGTHS = (37, 230, 11, 512, 96)


def test_torch_varlen_attention_keeps_documents_apart_in_bf16():
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from autotrain_unsloth.attention import torch_varlen_support, varlen
    from autotrain_unsloth.backends import ready_for_training
    from autotrain_unsloth.tiny_models import model_config

    if torch_varlen_support() is None:
        pytest.skip("this torch has no varlen_attn")
    varlen.register()
    config = model_config("llama", vocab_size=256, hidden=256, heads=8, kv_heads=2, layers=2, max_positions=1024)
    documents = [torch.randint(4, 256, (n,)).tolist() for n in DOCUMENT_LENGTHS]
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)([{"input_ids": d} for d in documents])
    ids, positions = batch["input_ids"].cuda(), batch["position_ids"].cuda()

    packed = {}
    for attention in (varlen.ATTENTION_NAME, "sdpa"):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attention, dtype=torch.bfloat16).cuda()
        ready_for_training(model).eval()
        with torch.no_grad():
            packed[attention] = per_token_losses(model, ids, positions)
            if attention == varlen.ATTENTION_NAME:
                start = 0
                for document in documents:
                    alone = per_token_losses(model, torch.tensor([document], device="cuda"))
                    inside = packed[attention][start:start + len(document) - 1]
                    assert (inside - alone).abs().max() < 0.05, (len(document), (inside - alone).abs().max())
                    start += len(document)
    # Same weights (same seed): the two kernels agree to bf16 rounding over the whole row.
    kept = batch["labels"][0, 1:].cuda() != -100
    difference = (packed[varlen.ATTENTION_NAME] - packed["sdpa"])[kept].abs()
    assert difference.max() < 0.05 and difference.mean() < 5e-3, difference.max()


def test_unsloth_dispatch_takes_torch_varlen_on_the_8b_shape():
    """In a process of its own: Unsloth must be imported before transformers."""
    code = """
import unsloth, json, torch
from types import SimpleNamespace
from autotrain_unsloth.attention import unsloth_dispatch
results = {}
for name, (heads, kv, dim) in {"8b": (32, 8, 128), "1b": (32, 8, 64), "tiny": (4, 2, 16)}.items():
    config = SimpleNamespace(num_attention_heads=heads, num_key_value_heads=kv, head_dim=dim, hidden_size=heads * dim)
    results[name] = unsloth_dispatch.install(config, torch.bfloat16)
    results[name + "-cudnn"] = torch.backends.cuda.cudnn_sdp_enabled()
print(json.dumps(results))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "UNSLOTH_DISABLE_STATISTICS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("8b", "1b", "tiny"):
        assert results[name].startswith("torch varlen_attn under Unsloth's dispatch (agrees"), results
        assert results[name + "-cudnn"] is True  # the fallback (cuDNN off) was not needed


def test_unsloth_sft_run_records_the_packed_attention_that_ran(tiny_models, workdir, data_dir):
    from autotrain_unsloth.attention import torch_varlen_support

    project = "llama-packed-unsloth"
    run_cli(workdir, *common_flags(tiny_models["llama"], data_dir, project), "--unsloth", "--peft", "--quantization",
            "int4", "--lora-dropout", "0", "--lr", "5e-3", "--mixed-precision", "bf16")
    with open(os.path.join(workdir, project, "plan.json")) as f:
        plan = json.load(f)
    assert plan["backend"] == "unsloth" and plan["packing"] is True
    if torch_varlen_support() == "no-gqa":
        assert plan["packed_attention"] == "torch-varlen-in-unsloth"
        assert plan["verified"]["packed_attention"].startswith("torch varlen_attn under Unsloth's dispatch (agrees")
        # The first step's calls Unsloth sent to the kernel (rows of one document length stay on its SDPA).
        assert isinstance(plan["verified"]["packed_attention_calls"]["varlen_attn"], int), plan["verified"]
    curve = losses(os.path.join(workdir, project))
    assert sum(curve[-5:]) / 5 < sum(curve[:5]) / 5, curve


def test_unsloth_full_fine_tuning_runs_packed_rows_through_torch_varlen(tiny_models, workdir, data_dir):
    """Unsloth loads full fine-tuning through FastModel (transformers' modelling code): the plan gives it our
    torch_varlen attention as attn_implementation, and the first step counts which kernel each call ran."""
    from autotrain_unsloth.attention import torch_varlen_support

    if torch_varlen_support() is None:
        pytest.skip("this torch has no varlen_attn")
    project = "llama-packed-unsloth-full"
    run_cli(workdir, *common_flags(tiny_models["llama"], data_dir, project), "--unsloth", "--lr", "1e-4",
            "--mixed-precision", "bf16")
    with open(os.path.join(workdir, project, "plan.json")) as f:
        plan = json.load(f)
    assert plan["backend"] == "unsloth" and plan["method"] == "full" and plan["packed_attention"] == "torch-varlen"
    assert plan["verified"]["packed_attention"].startswith("torch varlen_attn"), plan["verified"]
    calls = plan["verified"]["packed_attention_calls"]
    assert calls["varlen_attn"] > 0 and calls["sdpa"] == 0, calls
    curve = losses(os.path.join(workdir, project))
    assert sum(curve[-5:]) / 5 < sum(curve[:5]) / 5, curve
