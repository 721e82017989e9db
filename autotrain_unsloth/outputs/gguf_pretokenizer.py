"""Which pre-tokenizer llama.cpp must use for a tokenizer (`tokenizer.ggml.pre` in the GGUF file).

A byte-level BPE tokenizer first splits text with a regular expression (contractions, digits, runs of spaces,
letters of any script), then merges within each piece. llama.cpp does not read that expression from the file:
it has its own copy per tokenizer family, chosen by name. A wrong name splits "What's" or "  x" differently
from the tokenizer the model was trained with, silently.

The name is found as llama.cpp's converter finds it, by the hash of the token ids of a fixed text (its table,
gguf_tokenizer_hashes.py); for a tokenizer outside that table (trained anew, or newer), by its pre-tokenizer
in tokenizer.json when that is exactly one of the splits llama.cpp implements. Anything else is refused.
"""

from __future__ import annotations

import hashlib
import json
import os

from autotrain_unsloth.outputs.gguf_tokenizer_hashes import CHECK_TEXT, KNOWN_HASHES

# The expressions of tokenizer.json's Split pre-tokenizer that llama.cpp implements under these names.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
SPLITS = {LLAMA3_SPLIT: "llama-bpe", QWEN2_SPLIT: "qwen2"}


class UnknownPreTokenizer(ValueError):
    """llama.cpp would split this tokenizer's text differently; the message names the tokenizer."""


def check_hash(tokenizer_json: str) -> str:
    """The hash llama.cpp's converter computes: sha256 of str(token ids of CHECK_TEXT), special tokens added."""
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(tokenizer_json).encode(CHECK_TEXT).ids
    return hashlib.sha256(str(ids).encode()).hexdigest()


def pre_tokenizer_name(model_dir: str) -> str:
    """llama.cpp's name for the pre-tokenizer of model_dir's tokenizer.json; UnknownPreTokenizer if there is none."""
    path = os.path.join(model_dir, "tokenizer.json")
    known = KNOWN_HASHES.get(check_hash(path))
    if known:
        return known
    with open(path) as f:
        found = structural_name(json.load(f).get("pre_tokenizer"))
    if found:
        return found
    raise UnknownPreTokenizer(
        f"{path}: its pre-tokenizer ({describe(path)}) is not one llama.cpp is known to split text the same way "
        "with (it knows Llama 3, Qwen2, SmolLM and GPT-2 byte-level BPE, and the tokenizers in llama.cpp's "
        "convert_hf_to_gguf.py by their hash): export without --export-gguf and convert the merged model with a "
        "llama.cpp that knows this tokenizer")


def structural_name(pre) -> str | None:
    """The name for a tokenizer.json pre_tokenizer that is exactly one of llama.cpp's splits, else None."""
    if not isinstance(pre, dict):
        return None
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [part.get("type") for part in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True) and not parts[0].get("add_prefix_space"):
        return "gpt-2"  # GPT-2's expression inside ByteLevel
    if (kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits") and parts[1].get("use_regex", True)
            and not parts[1].get("add_prefix_space")):
        return "smollm"  # each digit alone, then GPT-2's expression (SmolLM, StarCoder)
    if kinds == ["Split", "ByteLevel"] and not parts[1].get("use_regex", True):
        pattern = parts[0].get("pattern", {}).get("Regex")
        if parts[0].get("behavior") == "Isolated" and pattern in SPLITS:
            return SPLITS[pattern]
    return None


def describe(tokenizer_json: str) -> str:
    with open(tokenizer_json) as f:
        pre = json.load(f).get("pre_tokenizer")
    text = json.dumps(pre, ensure_ascii=False)
    return text if len(text) <= 200 else text[:200] + "..."
