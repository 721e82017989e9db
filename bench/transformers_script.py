"""`transformers`: the plain transformers + PEFT (+ bitsandbytes) fine-tune, the way TRL's and PEFT's docs
write one (AutoModelForCausalLM, a LoraConfig handed to SFTTrainer, gradient checkpointing on), with the
workload's settings.

Like unsloth_script.py, it adds only the shared measuring instrument and does not save.

    python bench/transformers_script.py --model DIR --data DIR/train.jsonl --method qlora|lora|full --steps 20 --out DIR
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workload import PROJECTIONS, SETTINGS, script_arguments, sft_settings, write_result  # noqa: E402


def main() -> None:
    parser = script_arguments()
    args = parser.parse_args()

    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    from autotrain_unsloth.trainers.throughput import throughput_callback
    from autotrain_unsloth.verify import inspect_model

    cuda = torch.cuda.is_available()
    quantization = None
    if args.method == "qlora":
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                          bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(
        args.model, dtype=torch.bfloat16, quantization_config=quantization, attn_implementation="sdpa",
        device_map={"": 0} if cuda else None)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    peft_config = None
    if args.method != "full":
        peft_config = LoraConfig(r=SETTINGS["lora_r"], lora_alpha=SETTINGS["lora_alpha"], lora_dropout=SETTINGS["lora_dropout"],
                                 target_modules=list(PROJECTIONS), bias="none", task_type="CAUSAL_LM")

    dataset = load_dataset("json", data_files=args.data, split="train")
    speed = throughput_callback()
    trainer = SFTTrainer(
        model=model,
        processing_class=tokenizer,
        train_dataset=dataset,
        peft_config=peft_config,
        callbacks=[speed],
        args=SFTConfig(
            **sft_settings(args),
            gradient_checkpointing=True,
            gradient_checkpointing_kwargs={"use_reentrant": False},
            bf16=cuda,
            use_cpu=not cuda,
        ),
    )
    facts = inspect_model(trainer.model)
    trainer.train()

    write_result(args.out, trainer, speed, facts, "on")


if __name__ == "__main__":
    main()
