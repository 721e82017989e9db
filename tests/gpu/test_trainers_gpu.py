"""The dpo, orpo and reward trainers and chat templates on a CUDA GPU: reward with --unsloth falls back with the
warning that names it; dpo and orpo on Unsloth's path against the transformers path, same model, data and seed
(their loss curves are written to preference-curves.json; their agreement is why the plan puts them on
Unsloth); a chatml LoRA run on the Unsloth path trains the tokens the template adds, trains on the assistant's turns only
when asked, and its merged model generates."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from tests.gpu.test_unsloth_gpu import losses, run_cli

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(importlib.util.find_spec("unsloth") is None, reason="needs unsloth installed"),
]

CAPITALS = [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Germany", "Berlin"), ("Japan", "Tokyo"),
            ("Egypt", "Cairo"), ("Peru", "Lima"), ("Kenya", "Nairobi")]
REJECTED = ["I do not know.", "No idea, sorry.", "Bananas are yellow."]
QUICK = ["--max-steps", "30", "--batch-size", "4", "--gradient-accumulation", "1", "--block-size", "128",
         "--logging-steps", "1", "--warmup-ratio", "0", "--seed", "7", "--lora-dropout", "0", "--lr", "5e-3"]


@pytest.fixture(scope="module")
def preference_dir(workdir):
    folder = os.path.join(workdir, "preference-data")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "train.jsonl"), "w") as f:
        for index, (country, capital) in enumerate(CAPITALS * 4):
            f.write(json.dumps({"prompt": f"What is the capital of {country}?", "chosen": f"The capital of {country} is "
                                f"{capital}.", "rejected": REJECTED[index % 3]}) + "\n")
    return folder


@pytest.fixture(scope="module")
def chat_dir(workdir):
    folder = os.path.join(workdir, "chat-data")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "train.jsonl"), "w") as f:
        for country, capital in CAPITALS * 4:
            f.write(json.dumps({"messages": [{"role": "user", "content": f"What is the capital of {country}?"},
                                             {"role": "assistant", "content": f"{capital}."}]}) + "\n")
    return folder


def preference_flags(model, data, project, trainer):
    return ["--train", "--model", model, "--data-path", data, "--project-name", project, "--trainer", trainer,
            "--prompt-text-column", "prompt", "--text-column", "chosen", "--rejected-text-column", "rejected",
            "--peft", "--quantization", "none", *QUICK]


def test_reward_with_unsloth_runs_on_transformers_with_the_named_warning(tiny_models, workdir, preference_dir):
    run_cli(workdir, *preference_flags(tiny_models["llama"], preference_dir, "reward-unsloth", "reward"), "--unsloth")
    with open(os.path.join(workdir, "reward-unsloth", "plan.json")) as f:
        plan = json.load(f)
    assert plan["backend"] == "transformers"
    assert any("trainer 'reward'" in warning for warning in plan["warnings"]), plan["warnings"]
    history = json.load(open(os.path.join(workdir, "reward-unsloth", "trainer_state.json")))["log_history"]
    accuracy = [entry["accuracy"] for entry in history if "accuracy" in entry]
    assert sum(accuracy[-5:]) / 5 > 0.5, accuracy


@pytest.mark.parametrize("trainer", ["dpo", "orpo"])
def test_preference_trainer_on_unsloth_against_transformers(tiny_models, workdir, preference_dir, trainer):
    """Why dpo and orpo are on Unsloth's path (plan/rules.py): the same curve as the transformers path."""
    model = tiny_models["llama"]
    run_cli(workdir, *preference_flags(model, preference_dir, f"{trainer}-transformers", trainer), "--mixed-precision",
            "bf16")
    run_cli(workdir, *preference_flags(model, preference_dir, f"{trainer}-unsloth", trainer), "--unsloth")
    plan = json.load(open(os.path.join(workdir, f"{trainer}-unsloth", "plan.json")))
    assert (plan["backend"], plan["verified"]["matches_plan"]) == ("unsloth", True), plan["reasons"]
    curves = {path: losses(os.path.join(workdir, f"{trainer}-{path}")) for path in ("transformers", "unsloth")}
    record = os.path.join(workdir, "preference-curves.json")
    saved = json.load(open(record)) if os.path.exists(record) else {}
    saved[trainer] = curves
    with open(record, "w") as f:
        json.dump(saved, f, indent=1)
    first = {path: curve[0] for path, curve in curves.items()}
    last = {path: sum(curve[-5:]) / 5 for path, curve in curves.items()}
    assert abs(first["unsloth"] - first["transformers"]) <= 0.02 * abs(first["transformers"]) + 1e-3, first
    assert abs(last["unsloth"] - last["transformers"]) <= 0.1 * abs(first["transformers"]), (last, curves)


def test_chatml_lora_on_unsloth_trains_the_new_tokens_and_the_merged_model_generates(tiny_models, workdir, chat_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = tiny_models["llama"]
    flags = ["--train", "--model", model, "--data-path", chat_dir, "--project-name", "chatml-unsloth", "--trainer", "sft",
             "--chat-template", "chatml", "--response-only-loss", "--peft", "--quantization", "none", "--merge-adapter",
             *QUICK]
    run_cli(workdir, *flags, "--unsloth")
    reference = [*flags[:flags.index("--project-name") + 1], "chatml-transformers",
                 *flags[flags.index("--project-name") + 2:], "--mixed-precision", "bf16"]
    run_cli(workdir, *[flag for flag in reference if flag != "--merge-adapter"])
    project = os.path.join(workdir, "chatml-unsloth")
    plan = json.load(open(os.path.join(project, "plan.json")))
    assert (plan["backend"], plan["new_tokens"]) == ("unsloth", "embeddings"), plan["reasons"]
    # Unsloth computed the loss on the same tokens as the transformers path (the assistant's), from the same start.
    first = {path: losses(os.path.join(workdir, f"chatml-{path}"))[0] for path in ("unsloth", "transformers")}
    assert abs(first["unsloth"] - first["transformers"]) <= 0.02 * first["transformers"], first

    tokenizer = AutoTokenizer.from_pretrained(project)
    merged = AutoModelForCausalLM.from_pretrained(project, dtype=torch.bfloat16).cuda()
    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    start = base.get_input_embeddings().weight.mean(dim=0)
    ids = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    trained = merged.get_input_embeddings().weight[ids].float().cpu()
    assert all((row - start).abs().max() > 1e-3 for row in trained), "the added tokens' rows did not change"
    # The end of a turn is the EOS everywhere; generation also keeps the model's own EOS as a second stop.
    assert tokenizer.eos_token == "<|im_end|>" and merged.config.eos_token_id == ids[1]
    assert merged.generation_config.eos_token_id in (ids[1], [ids[1], 2]), merged.generation_config
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(prompt, return_tensors="pt").to("cuda")
    output = merged.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]
