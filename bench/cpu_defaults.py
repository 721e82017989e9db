"""CPU: tokens/s of LoRA training steps under the old defaults (sft rows packed to 1,024 tokens, gradient
checkpointing on) and the new ones (each batch padded to its longest example, checkpointing off), and the two
mixed, on one model and short chat rows. The configurations take turns step by step, so that a machine whose
load changes during the run slows them alike.

    python bench/cpu_defaults.py MODEL_FOLDER [--rounds 1] [--threads 2]

Prints one JSON line per configuration: real (non-padding) tokens trained, seconds, tokens/s.
"""

from __future__ import annotations

import argparse
import json
import time


def chat_rows(tokenizer, count: int) -> list[list[int]]:
    rows = []
    for n in range(10, 10 + count):
        messages = [{"role": "system", "content": "Answer with one word."},
                    {"role": "user", "content": f"Colour of {n}?"},
                    {"role": "assistant", "content": "blue" if n % 2 == 0 else "green"}]
        rows.append(list(tokenizer.apply_chat_template(messages, return_dict=True)["input_ids"]))
    return rows


def packed(rows, start: int, length: int = 1024):
    import torch

    ids, positions, i = [], [], start
    while len(ids) + len(rows[i % len(rows)]) <= length:
        ids += rows[i % len(rows)]
        positions += range(len(rows[i % len(rows)]))
        i += 1
    return {"input_ids": torch.tensor([ids]), "position_ids": torch.tensor([positions]),
            "labels": torch.tensor([ids])}, i


def padded(rows, start: int, batch: int = 8, pad: int = 0):
    import torch

    chunk = [rows[(start + k) % len(rows)] for k in range(batch)]
    longest = max(map(len, chunk))
    ids = torch.tensor([row + [pad] * (longest - len(row)) for row in chunk])
    mask = torch.tensor([[1] * len(row) + [0] * (longest - len(row)) for row in chunk])
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}, start + batch


def lora_model(folder: str, checkpointing: bool):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    if checkpointing:
        model.gradient_checkpointing_enable({"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    return model.train()


def main() -> None:
    import torch
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    # TRL's padding-free packing lays a whole batch out as one row: batch 8 of 1,024-token bins is 8,192 tokens
    parser.add_argument("--packed-length", type=int, default=1024)
    parser.add_argument("--only", help="run only the configurations whose name contains this")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    rows = chat_rows(tokenizer, 600)
    # (name, packed rows?, checkpointing?, steps a round: about 1,000 tokens each way)
    configs = [("old: packed 1024, checkpointing on", True, True, 1),
               ("new: padded batches of 8, checkpointing off", False, False, 4),
               ("packed 1024, checkpointing off", True, False, 1),
               ("padded batches of 8, checkpointing on", False, True, 4)]
    configs = [config for config in configs if not args.only or args.only in config[0]]
    state = {}
    for name, is_packed, checkpointing, _ in configs:
        model = lora_model(args.model, checkpointing)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        state[name] = {"model": model, "optimizer": optimizer, "next": 0, "tokens": 0, "seconds": 0.0}
    def step(run, batch) -> float:
        start = time.perf_counter()
        run["model"](**batch).loss.backward()
        run["optimizer"].step()
        run["optimizer"].zero_grad()
        return time.perf_counter() - start

    for name in state:  # warm-up: one small step each (first allocations, the optimizer's states)
        step(state[name], padded(rows, 0)[0])
    for _ in range(args.rounds):
        for name, is_packed, _, steps in configs:
            run = state[name]
            for _ in range(steps):
                batch, run["next"] = (packed(rows, run["next"], args.packed_length) if is_packed
                                      else padded(rows, run["next"]))
                run["seconds"] += step(run, batch)
                run["tokens"] += int((batch["labels"] != -100).sum())
    for name, *_ in configs:
        run = state[name]
        print(json.dumps({"config": name, "threads": args.threads, "tokens": run["tokens"],
                          "seconds": round(run["seconds"], 1), "tokens_per_s": round(run["tokens"] / run["seconds"], 1)}))


if __name__ == "__main__":
    main()
