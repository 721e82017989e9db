"""Real fine-tunes on CPU through the real entry points: the loss falls, outputs load back and generate,
the token is written nowhere, failures propagate."""

from __future__ import annotations

import glob
import json
import os

import pytest
import torch

from tests.conftest import aitraining, losses

pytestmark = pytest.mark.slow
TOKEN = "hf_test_token_must_not_leak_1234"
METHODS = {"lora": ["--peft", "--quantization", "none", "--lr", "1e-2"], "full": ["--lr", "3e-3"]}


def train_flags(model, data, project, trainer, steps=35):
    return [
        "llm",
        "--train",
        "--model",
        model,
        "--data-path",
        data,
        "--project-name",
        project,
        "--trainer",
        trainer,
        "--max-steps",
        str(steps),
        "--batch-size",
        "4",
        "--gradient-accumulation",
        "1",
        "--block-size",
        "64",
        "--logging-steps",
        "1",
        "--warmup-ratio",
        "0",
        "--token",
        TOKEN,
    ]


def generate(model, tokenizer) -> torch.Tensor:
    inputs = tokenizer("Question: What is the capital of France?\nAnswer:", return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert output.shape[1] > inputs["input_ids"].shape[1]  # it generated (it may stop early at EOS)
    return output


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("trainer", ["default", "sft"])
def test_training_lowers_the_loss_and_output_loads(in_tmp, models, data_dir, trainer, method):
    project = f"{trainer}-{method}"
    result = aitraining(*train_flags(models["llama"], data_dir, project, trainer), *METHODS[method], cwd=in_tmp)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder = in_tmp / project

    curve = losses(folder)
    assert len(curve) >= 30
    assert sum(curve[-5:]) / 5 < sum(curve[:5]) / 5 - 0.3, curve  # LoRA on a random 140k-parameter model: about 0.6

    plan = json.loads((folder / "plan.json").read_text())
    assert (plan["backend"], plan["method"], plan["trainer"]) == ("transformers", method, trainer)
    assert plan["verified"]["matches_plan"] is True
    # sized against the host's memory, the tiny model fits without checkpointing: planned off, seen off
    assert plan["gradient_checkpointing"] == "off" and plan["verified"]["gradient_checkpointing_active"] is False
    assert plan["liger"] is False and plan["verified"]["liger_modules"] == 0  # no GPU: Liger's kernels are Triton
    for name in (
        "training_params.json",
        "README.md",
        "tokenizer.json",
        "trainer_state.json",
        "run_summary.json",
        "autotrain.log",
    ):
        assert (folder / name).exists(), name

    # Throughput over the 25 steps after the 10 warm-up steps, in the real tokens the Trainer counted: whole
    # 64-token blocks for the default trainer (an epoch's last batch has fewer), unpadded lengths for sft.
    summary = json.loads((folder / "run_summary.json").read_text())
    assert (summary["optimizer"], summary["optimizer_class"]) == ("adamw_torch", "torch.optim.adamw.AdamW")
    speed = summary["throughput"]
    assert speed["measured_steps"] == 25 and speed["tokens_per_s"] > 0
    assert len(speed["step_s"]) == 25 and all(t > 0 for t in speed["step_s"])
    assert speed["median_step_s"] == pytest.approx(sorted(speed["step_s"])[12], abs=1e-4)
    assert speed["alloc_retries"] is None and speed["train_reserved_peak_gib"] is None  # no CUDA here
    start, end = speed["measured_window_unix"]
    assert end - start == pytest.approx(sum(speed["step_s"]), abs=0.01)
    # The run's figures, against what is known of it: 35 steps each logged, 40 rows in the data file, the wall
    # time of all 35 steps (more than the 25 measured ones; the first logged step's time was once reported).
    assert summary["steps"] == 35 and summary["rows_given"] == 40
    assert summary["train_loss"] == {"first": curve[0], "last": curve[-1], "last_step": 35, "best": min(curve),
                                     "best_step": curve.index(min(curve)) + 1}
    assert summary["eval_loss"]["last"] is None
    assert summary["train_runtime_s"] > end - start
    assert summary["tokens_per_s"] == pytest.approx(summary["tokens_seen"] / summary["train_runtime_s"], abs=0.1)
    card = (folder / "README.md").read_text()
    assert f"| training loss | {curve[-1]:.4f} at step 35" in card and "| optimizer steps | 35 |" in card
    assert f"`{data_dir}`, 40 rows given" in card  # the user's data, not the prepared copy
    state = json.loads((folder / "trainer_state.json").read_text())
    seen = {entry["step"]: entry["num_input_tokens_seen"] for entry in state["log_history"] if "loss" in entry}
    assert speed["measured_tokens"] == seen[35] - seen[10]
    per_step = [seen[step] - seen[step - 1] for step in range(11, 36)]
    assert all(0 < tokens <= 4 * 64 for tokens in per_step)
    if trainer == "default":
        assert all(tokens % 64 == 0 for tokens in per_step)
    else:
        assert any(tokens % 64 for tokens in per_step)  # padding is not counted

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if method == "lora":
        from peft import AutoPeftModelForCausalLM

        assert (folder / "adapter_model.safetensors").exists() and not (folder / "model.safetensors").exists()
        generate(AutoPeftModelForCausalLM.from_pretrained(folder), tokenizer)
    else:
        generate(AutoModelForCausalLM.from_pretrained(folder), tokenizer)

    leaked = [
        path
        for path in glob.glob(str(folder / "**" / "*"), recursive=True)
        if os.path.isfile(path) and TOKEN.encode() in open(path, "rb").read()
    ]
    assert leaked == []
    assert TOKEN not in result.stdout + result.stderr


def test_merge_adapter_keeps_the_model_dtype(in_tmp, models, data_dir):
    result = aitraining(
        *train_flags(models["llama-bf16"], data_dir, "merged", "default", steps=5),
        *METHODS["lora"],
        "--merge-adapter",
        cwd=in_tmp,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = in_tmp / "merged"
    assert glob.glob(str(folder / "adapter_*")) == []
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype="auto")
    assert model.dtype == torch.bfloat16
    generate(model, AutoTokenizer.from_pretrained(folder))


def conversation(question: str, answer: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})


def test_chat_template_lora_with_validation_and_tensorboard(in_tmp, models):
    os.makedirs("chat")
    with open("chat/train.jsonl", "w") as f:
        f.writelines(conversation(f"Capital number {i}?", f"City {i}.") + "\n" for i in range(16))
    with open("chat/valid.jsonl", "w") as f:
        f.writelines(conversation(f"Capital number {i}?", f"City {i}.") + "\n" for i in range(4))
    result = aitraining(
        *train_flags(models["llama"], "chat", "chat", "sft", steps=8),
        *METHODS["lora"],
        "--chat-template",
        "chatml",
        "--text-column",
        "messages",
        "--valid-split",
        "valid",
        "--eval-strategy",
        "steps",
        "--log",
        "tensorboard",
        cwd=in_tmp,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    state = json.loads((in_tmp / "chat" / "trainer_state.json").read_text())
    assert any("eval_loss" in entry for entry in state["log_history"])  # the validation split was used
    assert glob.glob(str(in_tmp / "chat" / "runs" / "**" / "events.out.tfevents.*"), recursive=True)
    summary = json.loads((in_tmp / "chat" / "run_summary.json").read_text())
    evals = [(entry["eval_loss"], entry["step"]) for entry in state["log_history"] if "eval_loss" in entry]
    assert (summary["eval_loss"]["last"], summary["eval_loss"]["last_step"]) == evals[-1]
    assert (summary["eval_loss"]["best"], summary["eval_loss"]["best_step"]) == min(evals)
    card = (in_tmp / "chat" / "README.md").read_text()
    assert "apply_chat_template(messages, add_generation_prompt=True" in card
    assert 'convert_tokens_to_ids("<|im_end|>")' in card  # chatml's end of turn stops generation
    adapter = json.loads((in_tmp / "chat" / "adapter_config.json").read_text())
    assert adapter["trainable_token_indices"]  # the chat template's new tokens were trained
