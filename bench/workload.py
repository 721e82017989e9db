"""The benchmark workload, defined once for every path: model shapes, tokenizer, data and training settings.

Models are random-init Llama-3.2-1B and Llama-3.1-8B shapes (their config.json's sizes; no machine here
reaches the Hub), saved in bf16. The tokenizer has Llama 3's 128,256-token vocabulary: one token per
whitespace-separated word `w0`..`w127999`, then Llama 3's special tokens, so the output head does the real
model's work. Two data workloads, rows of random words:
- `dense`: every row longer than the sequence length, so every sequence is full: batch 2 x 2048 tokens, no
  padding (the paths count non-padding tokens all the same);
- `instruct`: instruction-length rows, lengths drawn from INSTRUCT (log-normal, median 250 tokens): what users
  fine-tune on. Each path batches them its own way (packed, padding-free or padded); tokens/s counts the
  non-padding tokens trained on.

    python bench/workload.py build --model llama-3.1-8b --out DIR     # model + tokenizer (on the GPU if any)
    python bench/workload.py data --rows 64 --out DIR                 # DIR/train.jsonl (dense)
    python bench/workload.py data --workload instruct --out DIR       # DIR/train.jsonl (instruct)
"""

from __future__ import annotations

import argparse
import json
import os
import random

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# The settings every path trains with.
SETTINGS = dict(batch_size=2, seq_len=2048, gradient_accumulation=1, optimizer="adamw_8bit", lr=2e-4,
                weight_decay=0.01, seed=3407, lora_r=16, lora_alpha=16, lora_dropout=0.0, dtype="bfloat16")

# The instruction-length workload: token counts per row (the BOS token included), log-normal around the median.
INSTRUCT = dict(rows=4000, median_tokens=250, sigma=0.8, min_tokens=16, max_tokens=2000, seed=0)
WORKLOADS = ("dense", "instruct")
PATHS = ("ours", "unsloth-script", "transformers", "ours-auto", "ours-transformers")
METHODS = ("qlora", "lora", "full")

_LLAMA3 = dict(num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, rms_norm_eps=1e-5,
               max_position_embeddings=131072, bos_token_id=128000, eos_token_id=128001, hidden_act="silu")
SHAPES = {
    "llama-3.2-1b": dict(_LLAMA3, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, head_dim=64,
                         tie_word_embeddings=True,
                         rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=32.0, low_freq_factor=1.0,
                                              high_freq_factor=4.0, original_max_position_embeddings=8192)),
    "llama-3.1-8b": dict(_LLAMA3, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, head_dim=128,
                         tie_word_embeddings=False,
                         rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                                              high_freq_factor=4.0, original_max_position_embeddings=8192)),
    # Larger decoders for the big-model fit (docs/benchmarks.md), with Llama 3's vocabulary and plain rotary embeddings:
    # phi-4's decoder (14.7B with its own vocabulary, 15.2B with this one), Mistral-Small-24B's, Qwen2.5-32B's.
    "llama-14b": dict(_LLAMA3, hidden_size=5120, intermediate_size=17920, num_hidden_layers=40, num_attention_heads=40,
                      num_key_value_heads=10, head_dim=128, tie_word_embeddings=False, rope_theta=250000.0),
    "llama-24b": dict(_LLAMA3, hidden_size=5120, intermediate_size=32768, num_hidden_layers=40, head_dim=128,
                      tie_word_embeddings=False, rope_theta=100000000.0),
    "llama-32b": dict(_LLAMA3, hidden_size=5120, intermediate_size=27648, num_hidden_layers=64, num_attention_heads=40,
                      head_dim=128, tie_word_embeddings=False, rope_theta=1000000.0),
    # For the CPU test of the bench's plumbing only (tests/test_bench.py); never in a results file.
    "tiny-llama": dict(_LLAMA3, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, tie_word_embeddings=False, max_position_embeddings=4096),
}
WORDS = 128000  # ids 0..127999; Llama 3's 256 special tokens follow


def build_tokenizer():
    """A word-level tokenizer with Llama 3's vocabulary size and special-token ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(WORDS)}
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
                "<|finetune_right_pad_id|>"] + [f"<|reserved_special_token_{i}|>" for i in range(2, 253)]
    vocab.update({token: WORDS + i for i, token in enumerate(specials)})
    assert len(vocab) == 128256
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<|reserved_special_token_0|>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", WORDS)])
    tokenizer.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
                                   pad_token="<|finetune_right_pad_id|>", unk_token="<|reserved_special_token_0|>",
                                   model_max_length=131072)


def write_config_only(name: str, folder: str) -> str:
    """A model folder with the named shape's config.json and the tokenizer but no weights: what the plan reads, for
    checking what it decides about a model too large to build here."""
    from transformers import LlamaConfig

    os.makedirs(folder, exist_ok=True)
    LlamaConfig(**SHAPES[name]).save_pretrained(folder)
    build_tokenizer().save_pretrained(folder)
    return folder


def build_model(name: str, folder: str, seed: int = 0, tokenizer=None) -> str:
    """Save a random-init bf16 model of the named shape and its tokenizer (built on the GPU when there is one):
    the bench's word-level one, or the given one, whose special-token ids then go into the config."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    ids = {} if tokenizer is None else {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                                        "pad_token_id": tokenizer.pad_token_id}
    config = LlamaConfig(**{**SHAPES[name], **ids})
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, max_shard_size="5GB")
    (tokenizer or build_tokenizer()).save_pretrained(folder)
    with open(os.path.join(folder, "BENCH_MODEL"), "w") as f:
        f.write(f"{name}: random init, seed {seed}, {sum(p.numel() for p in model.parameters()):,} parameters\n")
    return folder


def write_data(folder: str, rows: int, words_per_row: int | None = None, seed: int = 0) -> str:
    """folder/train.jsonl: `rows` rows of random words, each longer than the sequence length."""
    rng = random.Random(seed)
    words_per_row = words_per_row or SETTINGS["seq_len"] + 64
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "train.jsonl")
    with open(path, "w") as f:
        for _ in range(rows):
            f.write(json.dumps({"text": " ".join(f"w{rng.randrange(WORDS)}" for _ in range(words_per_row))}) + "\n")
    return path


def instruct_lengths(spec: dict = INSTRUCT) -> list[int]:
    """Tokens per row of the instruct workload (the tokenizer adds one BOS token to each row's words)."""
    import math

    rng = random.Random(spec["seed"])
    mu = math.log(spec["median_tokens"])
    return [min(spec["max_tokens"], max(spec["min_tokens"], round(rng.lognormvariate(mu, spec["sigma"]))))
            for _ in range(spec["rows"])]


def write_instruct_data(folder: str, spec: dict = INSTRUCT) -> str:
    """folder/train.jsonl: the instruct workload's rows of random words."""
    rng = random.Random(spec["seed"] + 1)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "train.jsonl")
    with open(path, "w") as f:
        for tokens in instruct_lengths(spec):
            f.write(json.dumps({"text": " ".join(f"w{rng.randrange(WORDS)}" for _ in range(tokens - 1))}) + "\n")
    return path


def script_arguments() -> argparse.ArgumentParser:
    """The command line both hand-written scripts (unsloth_script.py, transformers_script.py) take."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--method", choices=("qlora", "lora", "full"), required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--optimizer", default=SETTINGS["optimizer"])
    parser.add_argument("--seq-len", type=int, default=SETTINGS["seq_len"])
    parser.add_argument("--gradient-accumulation", type=int, default=SETTINGS["gradient_accumulation"])
    return parser


def sft_settings(args) -> dict:
    """The SFTConfig arguments both hand-written scripts train with: the workload's settings, no saving, and
    the token count the shared throughput callback reads."""
    return dict(
        dataset_text_field="text",
        max_length=args.seq_len,
        per_device_train_batch_size=SETTINGS["batch_size"],
        gradient_accumulation_steps=args.gradient_accumulation,
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
    )


def write_result(out: str, trainer, speed, loaded: dict, gradient_checkpointing: str) -> None:
    """out/result.json: what a hand-written script measured and trained (bench/throughput.py reads it)."""
    result = {"throughput": speed.summary(), "loaded": loaded, "gradient_checkpointing": gradient_checkpointing,
              "gradient_checkpointing_flag": bool(getattr(trainer.model, "is_gradient_checkpointing", False)),
              "log_history": trainer.state.log_history}
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build")
    build.add_argument("--model", choices=sorted(SHAPES), required=True)
    build.add_argument("--out", required=True)
    data = sub.add_parser("data")
    data.add_argument("--workload", choices=WORKLOADS, default="dense")
    data.add_argument("--rows", type=int, help="dense: rows to write")
    data.add_argument("--words-per-row", type=int)
    data.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.command == "build":
        print(build_model(args.model, args.out))
    elif args.workload == "instruct":
        print(write_instruct_data(args.out))
    else:
        if args.rows is None:
            parser.error("data --workload dense needs --rows")
        print(write_data(args.out, args.rows, args.words_per_row))


if __name__ == "__main__":
    main()
