"""`unsloth-script`: a minimal hand-written Unsloth fine-tune, the way Unsloth's docs and notebooks write one
(FastLanguageModel.from_pretrained, get_peft_model, TRL's SFTTrainer), with the workload's settings.

The only additions are the measuring instrument every path shares (autotrain_unsloth's throughput callback
and token counting, and its model inspection, so the record says what was really trained) and no saving.

    python bench/unsloth_script.py --model DIR --data DIR/train.jsonl --method qlora|lora|full --steps 20 --out DIR
"""

from unsloth import FastLanguageModel  # noqa: I001  (first: Unsloth patches transformers, trl and peft)

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_profile import step_profiler  # noqa: E402
from workload import PROJECTIONS, SETTINGS, script_arguments, sft_settings, write_result  # noqa: E402


def main() -> None:
    parser = script_arguments()
    # Diagnostics, off in the benchmarked `unsloth-script` path (see docs/benchmarks.md, bench/diagnose.sh):
    parser.add_argument("--packing", action="store_true", help="TRL packing (default: off, as Unsloth's notebooks)")
    parser.add_argument("--no-gradient-checkpointing", action="store_true",
                        help="use_gradient_checkpointing=False (and SFTConfig gradient_checkpointing=False)")
    parser.add_argument("--sft-gradient-checkpointing-false", action="store_true",
                        help="pass gradient_checkpointing=False to SFTConfig (TRL's default is True), as our CLI does")
    parser.add_argument("--torch-varlen", action="store_true",
                        help="packed rows through torch's varlen kernel, as ours-auto does: given to Unsloth's dispatch "
                             "(LoRA, QLoRA) or, for full fine-tuning, as attn_implementation (attention/varlen.py)")
    parser.add_argument("--profile", action="store_true",
                        help="profile some steps (--profile-steps): GPU idle time by host phase and the top kernels, "
                             "to OUT/profile.txt and OUT/profile_idle.json (bench/step_profile.py)")
    parser.add_argument("--profile-steps", default="13-15", help="first-last step to profile (with --profile)")
    args = parser.parse_args()
    checkpointing = False if args.no_gradient_checkpointing else "unsloth"

    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    from autotrain_unsloth.trainers.arguments import optimizer_cls_and_kwargs
    from autotrain_unsloth.trainers.throughput import throughput_callback
    from autotrain_unsloth.verify import inspect_model

    varlen_attention = {}
    if args.torch_varlen and args.method == "full":  # FastModel: transformers' attention interface
        from autotrain_unsloth.attention import varlen

        varlen_attention = {"attn_implementation": varlen.register()}
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=args.model,
        max_seq_length=args.seq_len,
        dtype=None,
        load_in_4bit=args.method == "qlora",
        full_finetuning=args.method == "full",
        use_gradient_checkpointing=checkpointing,
        **varlen_attention,
    )
    if args.method != "full":
        model = FastLanguageModel.get_peft_model(
            model,
            r=SETTINGS["lora_r"],
            target_modules=list(PROJECTIONS),
            lora_alpha=SETTINGS["lora_alpha"],
            lora_dropout=SETTINGS["lora_dropout"],
            bias="none",
            use_gradient_checkpointing=checkpointing,
            random_state=SETTINGS["seed"],
        )
    facts = inspect_model(model)
    if args.torch_varlen and args.method != "full":
        import torch

        from autotrain_unsloth.attention.unsloth_dispatch import install

        print(install(model.config, torch.bfloat16), flush=True)

    dataset = load_dataset("json", data_files=args.data, split="train")
    speed = throughput_callback()
    trainer = SFTTrainer(
        model=model,
        processing_class=tokenizer,
        train_dataset=dataset,
        callbacks=[speed] + ([step_profiler(args.out, *map(int, args.profile_steps.split("-")))] if args.profile else []),
        args=SFTConfig(
            **sft_settings(args),
            packing=args.packing,
            # TRL's default gradient_checkpointing=True would turn checkpointing back on for the whole model.
            **({"gradient_checkpointing": False}
               if args.sft_gradient_checkpointing_false or args.no_gradient_checkpointing else {}),
        ),
    )
    # adamw_torch_8bit (a diagnostic's choice) runs as ours-auto runs it: torchao's AdamW8bit compiled once. Set as
    # trainers/recipe.py sets it, on the built trainer.
    trainer.optimizer_cls_and_kwargs = optimizer_cls_and_kwargs(trainer.args)
    trainer.train()

    write_result(args.out, trainer, speed, facts, "off" if checkpointing is False else "unsloth")  # Unsloth's default: unsloth


if __name__ == "__main__":
    main()
