"""The project folder after training, as AutoTrain writes it.

training_params.json (never the token), plan.json, README.md (model card), tokenizer files, the adapter
or the full weights, merged weights when merge_adapter, trainer_state.json (the loss history), runs/
(tensorboard, when log=tensorboard).
"""

from __future__ import annotations

import glob
import json
import os

from autotrain_unsloth.distributed import is_main
from autotrain_unsloth.outputs.run_figures import loss_text, run_figures
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import Plan

METHOD_NAMES = {"full": "full fine-tuning", "lora": "LoRA", "qlora-4bit": "QLoRA (4-bit base)", "lora-8bit": "LoRA (8-bit base)"}


def save_outputs(trainer, params: LLMTrainingParams, plan: Plan, tokenizer, throughput: dict,
                 rows_given: int | None = None) -> None:
    project = params.project_name
    trainer.model.config.use_cache = True
    trainer.save_model(project)  # every rank calls it (sharded states gather); the Trainer writes on rank 0
    if not is_main():
        return  # one copy of each file: rank 0 writes the rest
    tokenizer.model_max_length = base_tokenizer_limit(params)
    tokenizer.save_pretrained(project)
    trainer.state.save_to_json(os.path.join(project, "trainer_state.json"))
    params.save(project)
    state = trainer.state
    figures = run_figures(state.log_history, state.global_step, state.num_input_tokens_seen, rows_given,
                          len(trainer.train_dataset) if trainer.train_dataset is not None else None, state.epoch)
    write_model_card(params, plan, project, figures, chat_end_of_turn(params, tokenizer))
    merged = os.path.join(project, "merged")
    if plan.peft and (params.merged_copy or (params.export_gguf and not params.merge_adapter)):
        merge_adapter(params, plan, project, merged)
    if plan.peft and params.merge_adapter:
        merge_adapter(params, plan, project, project)
    if params.export_gguf:
        from autotrain_unsloth.outputs.gguf_export import export

        source = merged if plan.peft and not params.merge_adapter else project
        path = export(source, os.path.join(project, f"{params.project_basename}-{params.export_gguf}.gguf"), params.export_gguf)
        print(f"GGUF written: {path}", flush=True)
    write_run_summary(trainer, plan, project, throughput, figures)  # last: its presence says the run finished
    print(f"Saved to {project}/", flush=True)


def base_tokenizer_limit(params: LLMTrainingParams) -> int:
    """The base tokenizer's own model_max_length: training capped it at the plan's sequence length, which is no
    limit of the model's (transformers' "no limit" when the base has none)."""
    from autotrain_unsloth.plan.probe import read_tokenizer_limit

    return read_tokenizer_limit(params.model, params.token) or int(1e30)


def write_run_summary(trainer, plan: Plan, project: str, throughput: dict, figures: dict) -> None:
    """What ran and how it went, in one small file: losses, steps, rows, time, speed, peak GPU memory."""
    summary = {
        "backend": plan.backend, "method": plan.method, "trainer": plan.trainer,
        "gradient_checkpointing": plan.gradient_checkpointing, "packing": plan.packing,
        "optimizer": plan.optimizer, "optimizer_class": optimizer_class(trainer),
        **figures,
        "first_loss": figures["train_loss"]["first"], "last_loss": figures["train_loss"]["last"],
        "update": plan.update,
        "batch_size": plan.batch_size, "gradient_accumulation": plan.gradient_accumulation,
        "optimizer_state_offload": plan.optimizer_state_offload,
        "optimizer_state_resident_gib": plan.optimizer_state_resident_gib,
        "estimated_peak_gib": (plan.memory_estimate_gib or {}).get("total"),
        "peak_gpu_memory_gib": throughput["peak_gib"],
        "throughput": throughput,
    }
    path = os.path.join(project, "run_summary.json")
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(path + ".tmp", path)


def optimizer_class(trainer) -> str | None:
    """The optimizer that stepped the weights, as module.Class (accelerate wraps it; the wrapper is not it)."""
    optimizer = getattr(trainer, "optimizer", None)
    optimizer = getattr(optimizer, "optimizer", optimizer)
    return None if optimizer is None else f"{type(optimizer).__module__}.{type(optimizer).__qualname__}"


def merge_adapter(params: LLMTrainingParams, plan: Plan, project: str, target: str) -> None:
    """Merge the saved LoRA adapter into the base model's own 16-bit weights (for QLoRA too: the 4-bit copy was
    for training only) and save it into `target`: the project folder itself (merge_adapter, adapter files then
    removed, as in AutoTrain) or a folder beside the adapter (merged_copy)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from autotrain_unsloth.backends import fit_to_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(project)
    if plan.trainer == "reward":
        base = AutoModelForSequenceClassification.from_pretrained(params.model, num_labels=1, dtype="auto")
    else:
        base = AutoModelForCausalLM.from_pretrained(params.model, dtype="auto")
    fit_to_tokenizer(base, tokenizer)  # the template's rows, and its end-of-turn token as EOS in both configs
    try:
        merged = PeftModel.from_pretrained(base, project).merge_and_unload()
    except Exception as exc:
        raise RuntimeError(f"merging the adapter into {params.model} failed ({exc}); the adapter itself is saved in "
            f"{project}/") from exc
    merged.save_pretrained(target)
    tokenizer.save_pretrained(target)
    where = "its 16-bit weights" + (" (the 4-bit copy was for training only)" if plan.quantization else "")
    if target == project:
        for path in glob.glob(os.path.join(project, "adapter_*")):
            os.remove(path)
        print(f"Adapter merged into {params.model}, {where}, {merged.dtype}; adapter files removed.", flush=True)
    else:
        print(f"Adapter merged into {params.model}, {where}, {merged.dtype}: {target}/ (the adapter stays in "
              f"{project}/).", flush=True)


USAGE = {"text": """
from transformers import AutoModelForCausalLM, AutoTokenizer

model_path = "PATH_TO_THIS_FOLDER"
tokenizer = AutoTokenizer.from_pretrained(model_path)
model = AutoModelForCausalLM.from_pretrained(model_path, device_map="auto", dtype="auto").eval()
inputs = tokenizer("Hello", return_tensors="pt").to(model.device)
print(tokenizer.decode(model.generate(**inputs, max_new_tokens=32)[0], skip_special_tokens=True))
""", "chat": """
from transformers import AutoModelForCausalLM, AutoTokenizer

model_path = "PATH_TO_THIS_FOLDER"
tokenizer = AutoTokenizer.from_pretrained(model_path)
model = AutoModelForCausalLM.from_pretrained(model_path, device_map="auto", dtype="auto").eval()
messages = [{"role": "user", "content": "Hello"}]
# The chat template this model was trained with (saved with the tokenizer), ending with the assistant's cue.
inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                       return_dict=True).to(model.device)
end_of_turn = tokenizer.convert_tokens_to_ids("END_OF_TURN")  # the template's end of an answer
output = model.generate(**inputs, max_new_tokens=256, eos_token_id=end_of_turn)
print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
""", "reward": """
from transformers import AutoModelForSequenceClassification, AutoTokenizer

model_path = "PATH_TO_THIS_FOLDER"
tokenizer = AutoTokenizer.from_pretrained(model_path)
model = AutoModelForSequenceClassification.from_pretrained(model_path, device_map="auto", dtype="auto").eval()
inputs = tokenizer("Question and the answer to score", return_tensors="pt").to(model.device)
print(model(**inputs).logits[0, 0].item())  # the reward: higher is preferred
"""}


def chat_end_of_turn(params: LLMTrainingParams, tokenizer) -> str | None:
    """The token that ends an answer, for a run that trained on conversations (the tokenizer's EOS, which
    load_tokenizer set to the chat template's end of turn); None for plain text."""
    from autotrain_unsloth.data.conversations import is_chat

    return tokenizer.eos_token if is_chat(params) and params.trainer in ("sft", "dpo", "orpo") else None


def usage_code(plan: Plan, end_of_turn: str | None) -> str:
    if plan.trainer == "reward":
        return USAGE["reward"].strip()
    if end_of_turn:
        return USAGE["chat"].strip().replace("END_OF_TURN", end_of_turn)
    return USAGE["text"].strip()


def write_model_card(params: LLMTrainingParams, plan: Plan, project: str, figures: dict,
                     end_of_turn: str | None = None) -> None:
    reward = plan.trainer == "reward"
    tags = ["autotrain", "autotrain-unsloth"] + (["reward-model", "text-classification"] if reward else
                                                 ["text-generation-inference", "text-generation"])
    if plan.peft:
        tags.append("peft")
    if plan.backend == "unsloth":
        tags.append("unsloth")
    data_path = (plan.steps or {}).get("data_path") or params.data_path  # the user's, not the prepared copy
    front = ["---", "tags:"] + [f"- {tag}" for tag in tags] + ["library_name: transformers"]
    if not os.path.isdir(params.model):
        front.append(f"base_model: {params.model}")
    if not os.path.exists(data_path) and not data_path.endswith("autotrain-data"):
        front += ["datasets:", f"- {data_path}"]
    front += ["license: other", "---"]
    merged = plan.peft and params.merge_adapter
    merged_note = ("\n\nA copy merged into the base model's 16-bit weights is in `merged/`: load it as below with "
                   "`model_path` ending in `/merged`." if plan.peft and not params.merge_adapter and
                   (params.merged_copy or params.export_gguf) else "")
    if params.export_gguf:
        merged_note += (f"\n\nGGUF for llama.cpp and Ollama: `{params.project_basename}-{params.export_gguf}.gguf` "
                        f"(`llama-cli -m {params.project_basename}-{params.export_gguf}.gguf`).")
    lora = (f"r={params.lora_r}, alpha={params.lora_alpha}, targets {', '.join(plan.lora_target_modules or ())}"
            if plan.peft else "-")
    length = params.epochs if params.max_steps < 0 else f"{params.max_steps} steps"
    batch = f"{plan.batch_size or params.batch_size} x {plan.gradient_accumulation or params.gradient_accumulation}"
    rows = figures["rows_given"]
    trained = (f"{rows:,} rows given" if rows else "") + (
        f"{' -> ' if rows else ''}{figures['sequences']:,} training sequences"
        + (" (packed)" if plan.packing else "") if figures["sequences"] else "")
    runtime = figures["train_runtime_s"]
    speed = (f"{runtime:,.1f} s" if runtime is not None else "-") + (
        f", {figures['tokens_seen']:,} tokens, {figures['tokens_per_s']:,} tokens/s" if figures["tokens_per_s"] else "")
    body = f"""
# Model trained with autotrain-unsloth

Fine-tuned from `{params.model}` with the `{plan.trainer}` trainer.

| | |
|---|---|
| backend | {plan.backend} |
| method | {METHOD_NAMES[plan.method]}{' (merged)' if merged else ''} |
| precision | {plan.weights_dtype} weights, autocast {plan.autocast} |
| LoRA | {lora} |
| learning rate, epochs, batch | {params.lr}, {length}, {batch} |
| data | `{data_path}`{f", {trained}" if trained else ""} |
| optimizer steps | {figures['steps']} |
| training loss | {loss_text(figures['train_loss'])} |
| validation loss | {loss_text(figures['eval_loss'])} |
| training time | {speed} |
{"".join(f"| note | {warning} |" + chr(10) for warning in plan.warnings if "Unsloth was asked for" in warning)}
The full settings are in `training_params.json`, the decision in `plan.json` and the figures in
`run_summary.json`.{merged_note}

## Usage

```python
{usage_code(plan, end_of_turn)}
```
"""
    with open(os.path.join(project, "README.md"), "w") as f:
        f.write("\n".join(front) + "\n" + body)
