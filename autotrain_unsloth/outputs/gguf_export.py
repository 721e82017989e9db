"""GGUF export for llama.cpp and Ollama, written with the `gguf` package (llama.cpp's own writer and tensor-name
map): Llama, Mistral, Qwen2 and Gemma with a byte-level BPE tokenizer (tokenizer.json), as f16, bf16 or q8_0.

The tensors are llama.cpp's layout, as its converter (convert_hf_to_gguf.py) writes them: Llama and Mistral's
q/k projections permuted to its rotary order, Gemma's norms stored as 1 + weight, a tied output layer left out,
Llama 3's rotary scaling as its rope_freqs factors. 1-D tensors (norms) stay f32, as there. The pre-tokenizer
is named as llama.cpp knows it (gguf_pretokenizer.py). A SentencePiece tokenizer, a pre-tokenizer llama.cpp does
not know, or another rotary scaling, is refused with a pointer to that converter.
"""

from __future__ import annotations

import json
import math
import os

from autotrain_unsloth.errors import UserError
from autotrain_unsloth.outputs.gguf_pretokenizer import UnknownPreTokenizer, pre_tokenizer_name

# model_type -> (gguf architecture name, q/k permuted, norms + 1)
LAYOUTS = {"llama": ("llama", True, False), "mistral": ("llama", True, False), "qwen2": ("qwen2", False, False),
           "gemma": ("gemma", False, True)}
TYPES = ("f16", "bf16", "q8_0")
ROPE_TYPES = ("default", "llama3")  # the rotary scalings written here; others would run with the wrong positions


def rope_settings(config: dict) -> tuple[float, str, dict]:
    """(theta, rope type, its parameters) from config.json: transformers 5 writes `rope_parameters` (theta
    inside), older versions `rope_theta` and `rope_scaling` at the top level."""
    parameters = config.get("rope_parameters") or config.get("rope_scaling") or {}
    theta = parameters.get("rope_theta", config.get("rope_theta", 10000.0))
    return float(theta), parameters.get("rope_type", parameters.get("type", "default")), parameters


def llama3_rope_factors(config: dict):
    """Llama 3's frequency scaling as the per-frequency divisors llama.cpp reads from rope_freqs.weight."""
    import numpy as np

    theta, _, rope = rope_settings(config)
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    factor, low, high = rope.get("factor", 8.0), rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    context = rope.get("original_max_position_embeddings", 8192)
    factors = []
    for frequency in 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim):
        wavelength = 2 * math.pi / frequency
        if wavelength < context / high:
            factors.append(1.0)
        elif wavelength > context / low:
            factors.append(factor)
        else:
            smooth = (context / wavelength - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


class GGUFExportError(UserError, RuntimeError):
    """The model cannot be exported to GGUF here; the message says why and what to use instead."""


def permute(weight, heads: int):
    """Hugging Face's rotary layout (halves) to llama.cpp's (interleaved pairs), per head."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def llama_cpp_tensor(name: str, array, config: dict):
    """One Hugging Face tensor in llama.cpp's layout (the inverse is applied by the tests to read it back)."""
    _, permuted, plus_one = LAYOUTS[config["model_type"]]
    if permuted and name.endswith("q_proj.weight"):
        array = permute(array, config["num_attention_heads"])
    elif permuted and name.endswith("k_proj.weight"):
        array = permute(array, config.get("num_key_value_heads") or config["num_attention_heads"])
    if plus_one and name.endswith("norm.weight"):
        array = array + 1
    return array


def export(model_dir: str, out_path: str, kind: str) -> str:
    """Write model_dir (a saved 16- or 32-bit transformers model with its tokenizer) as GGUF; returns out_path."""
    import gguf
    from safetensors.torch import load_file

    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    if config["model_type"] not in LAYOUTS:
        raise GGUFExportError(f"GGUF export knows {', '.join(LAYOUTS)}; model_type {config['model_type']!r} is not one")
    theta, rope_type, _ = rope_settings(config)
    if rope_type not in ROPE_TYPES:
        raise GGUFExportError(f"GGUF export writes the rotary scalings {', '.join(ROPE_TYPES)}; this model's is "
                              f"{rope_type!r}: use llama.cpp's convert_hf_to_gguf.py on the merged model")
    tokenizer_path = os.path.join(model_dir, "tokenizer.json")
    with open(tokenizer_path) as f:
        tokenizer = json.load(f)
    if tokenizer.get("model", {}).get("type") != "BPE" or not isinstance(tokenizer["model"].get("merges"), list):
        raise GGUFExportError(f"{tokenizer_path}: GGUF export here takes a byte-level BPE tokenizer; for this one "
                              "use llama.cpp's convert_hf_to_gguf.py on the merged model")
    try:
        pre = pre_tokenizer_name(model_dir)
    except UnknownPreTokenizer as exc:
        raise GGUFExportError(str(exc)) from exc
    arch_name, _, _ = LAYOUTS[config["model_type"]]
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch_name)
    layers = config["num_hidden_layers"]
    names = gguf.get_tensor_name_map(arch, layers)
    qtype = {"f16": gguf.GGMLQuantizationType.F16, "bf16": gguf.GGMLQuantizationType.BF16,
             "q8_0": gguf.GGMLQuantizationType.Q8_0}[kind]
    file_type = {"f16": gguf.LlamaFileType.MOSTLY_F16, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[kind]

    writer = gguf.GGUFWriter(out_path, arch_name)
    writer.add_name(os.path.basename(os.path.normpath(model_dir)))
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config.get("num_key_value_heads") or config["num_attention_heads"])
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(theta)
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_file_type(file_type)
    _add_vocabulary(writer, tokenizer, model_dir, config, pre)

    if rope_type == "llama3":
        writer.add_tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", llama3_rope_factors(config))
    tied = config.get("tie_word_embeddings", False)
    for path in sorted(p for p in os.listdir(model_dir) if p.endswith(".safetensors")):
        for name, array in load_file(os.path.join(model_dir, path)).items():
            if tied and name == "lm_head.weight":
                continue  # llama.cpp reads the output layer from the embedding
            target = names.get_name(name, try_suffixes=(".weight", ".bias"))
            if target is None:
                raise GGUFExportError(f"{name}: no GGUF tensor name for it in the {arch_name} layout")
            data = llama_cpp_tensor(name, array.float().numpy(), config)  # bf16 has no numpy type
            if data.ndim == 1 or (qtype == gguf.GGMLQuantizationType.Q8_0 and data.shape[-1] % 32):
                writer.add_tensor(target, data)  # norms stay f32, as llama.cpp's converter keeps them
            else:
                writer.add_tensor(target, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path


def _add_vocabulary(writer, tokenizer: dict, model_dir: str, config: dict, pre: str) -> None:
    import gguf

    vocab = dict(tokenizer["model"]["vocab"])
    added = {token["content"]: token for token in tokenizer.get("added_tokens", [])}
    for content, token in added.items():
        vocab[content] = token["id"]
    size = max(config["vocab_size"], max(vocab.values()) + 1)
    by_id = {index: text for text, index in vocab.items()}
    tokens, types = [], []
    for index in range(size):
        text = by_id.get(index, f"[PAD{index}]")
        tokens.append(text)
        if text not in added and index in by_id:
            types.append(gguf.TokenType.NORMAL)
        elif index not in by_id:
            types.append(gguf.TokenType.UNUSED)
        else:
            types.append(gguf.TokenType.CONTROL if added[text].get("special") else gguf.TokenType.USER_DEFINED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)  # how llama.cpp splits text before BPE (gguf_pretokenizer.py)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=size).add_to_gguf(writer, quiet=True)
