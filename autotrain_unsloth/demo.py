"""`aitraining demo`: a real fine-tune, end to end, on any machine, with no network.

It builds a small Llama (the real transformers class, random weights) with a tokenizer trained on the
bundled data (capitals of 40 countries as question/answer pairs), asks it three questions, fine-tunes it
through the same runner as `aitraining llm --train` (Unsloth asked for: on a CPU the plan says why it
falls back), and asks again. On a CPU it takes well under two minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import resources

PROMPTS = ("Question: What is the capital of France?\nAnswer:",
           "Question: What is the capital of Japan?\nAnswer:",
           "Question: What is the capital of Kenya?\nAnswer:")


def bundled_texts() -> list[str]:
    data = resources.files("autotrain_unsloth") / "demo_data" / "train.jsonl"
    return [json.loads(line)["text"] for line in data.read_text().splitlines() if line.strip()]


def write_bundled_data(folder: str) -> str:
    """The bundled examples as `folder/train.jsonl`, a data folder for `--data-path`; returns folder."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "train.jsonl"), "w") as f:
        f.writelines(json.dumps({"text": text}) + "\n" for text in bundled_texts())
    return folder


def answers(model_dir: str) -> list[str]:
    """Greedy answers of the model in model_dir to PROMPTS."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    replies = []
    for prompt in PROMPTS:
        inputs = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        # transformers types decode() as str | list[str] for every input; one sequence decodes to one str.
        reply = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        replies.append(reply.split("\n")[0])  # type: ignore[union-attr]
    return replies


def run_demo(project_name: str = "demo-run", steps: int = 500) -> None:
    from autotrain_unsloth.params import LLMTrainingParams
    from autotrain_unsloth.project import AutoTrainProject
    from autotrain_unsloth.tiny_models import build_tiny_model

    inputs = tempfile.mkdtemp(prefix="aitraining-demo-")
    try:
        texts = bundled_texts()
        model_dir = build_tiny_model("llama", os.path.join(inputs, "tiny-llama"), texts,
                                     hidden=128, layers=4, heads=4, kv_heads=2, vocab_size=600)
        data_dir = write_bundled_data(os.path.join(inputs, "data"))
        print(f"Built a random-init Llama in {model_dir} and wrote {len(texts)} examples to {data_dir}\n")
        before = answers(model_dir)

        params = LLMTrainingParams(
            model=model_dir, data_path=data_dir, project_name=project_name, trainer="sft",
            unsloth=True, full_finetuning=True, quantization=None, lr=3e-3, scheduler="cosine", warmup_ratio=0.05,
            max_steps=steps, batch_size=8, gradient_accumulation=1, block_size=64, logging_steps=5,
        )
        AutoTrainProject(params=params, backend="local", process=True).create()
        after = answers(project_name)
    finally:
        shutil.rmtree(inputs, ignore_errors=True)

    with open(os.path.join(project_name, "trainer_state.json")) as f:
        losses = [entry["loss"] for entry in json.load(f)["log_history"] if "loss" in entry]
    print(f"\nLoss: {losses[0]:.3f} at the first step, {losses[-1]:.3f} at the last ({len(losses)} logged)")
    print("\nThe model's answers, before and after fine-tuning:")
    for prompt, old, new in zip(PROMPTS, before, after):
        print(f"  {prompt.splitlines()[0]}\n    before: {old.strip()!r}\n    after:  {new.strip()!r}")
    print(f"\nOutputs (model, tokenizer, plan.json, training_params.json, model card) are in {project_name}/")
