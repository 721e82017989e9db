"""`unsloth-script`: a minimal hand-written Unsloth fine-tune, the way Unsloth's docs and notebooks write one
(FastLanguageModel.from_pretrained, get_peft_model, TRL's SFTTrainer), with the workload's settings.

The only additions are the measuring instrument every path shares (autotrain_unsloth's throughput callback
and token counting, and its model inspection, so the record says what was really trained) and no saving.

    python bench/unsloth_script.py --model DIR --data DIR/train.jsonl --method qlora|lora|full --steps 20 --out DIR
"""

from unsloth import FastLanguageModel  # noqa: I001  (first: Unsloth patches transformers, trl and peft)

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workload import PROJECTIONS, SETTINGS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--method", choices=("qlora", "lora", "full"), required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--optimizer", default=SETTINGS["optimizer"])
    parser.add_argument("--seq-len", type=int, default=SETTINGS["seq_len"])
    parser.add_argument("--packing", action="store_true", help="TRL packing (default: off, as Unsloth's notebooks)")
    args = parser.parse_args()

    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    from autotrain_unsloth.trainers.throughput import throughput_callback
    from autotrain_unsloth.verify import inspect_model

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=args.model,
        max_seq_length=args.seq_len,
        dtype=None,
        load_in_4bit=args.method == "qlora",
        full_finetuning=args.method == "full",
    )
    if args.method != "full":
        model = FastLanguageModel.get_peft_model(
            model,
            r=SETTINGS["lora_r"],
            target_modules=list(PROJECTIONS),
            lora_alpha=SETTINGS["lora_alpha"],
            lora_dropout=SETTINGS["lora_dropout"],
            bias="none",
            use_gradient_checkpointing="unsloth",
            random_state=SETTINGS["seed"],
        )
    facts = inspect_model(model)

    dataset = load_dataset("json", data_files=args.data, split="train")
    speed = throughput_callback()
    trainer = SFTTrainer(
        model=model,
        processing_class=tokenizer,
        train_dataset=dataset,
        callbacks=[speed],
        args=SFTConfig(
            dataset_text_field="text",
            packing=args.packing,
            max_length=args.seq_len,
            per_device_train_batch_size=SETTINGS["batch_size"],
            gradient_accumulation_steps=SETTINGS["gradient_accumulation"],
            max_steps=args.steps,
            learning_rate=SETTINGS["lr"],
            logging_steps=1,
            optim=args.optimizer,
            weight_decay=SETTINGS["weight_decay"],
            lr_scheduler_type="linear",
            seed=SETTINGS["seed"],
            output_dir=args.out,
            save_strategy="no",
            report_to="none",
            include_num_input_tokens_seen="non_padding",
        ),
    )
    trainer.train()

    result = {"throughput": speed.summary(), "loaded": facts,
              "gradient_checkpointing": "unsloth",  # Unsloth's default, for full fine-tuning too
              "gradient_checkpointing_flag": bool(getattr(model, "is_gradient_checkpointing", False)),
              "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]}
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
