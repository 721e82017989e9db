"""GGUF export (outputs/gguf_export.py): each architecture it knows, as f16 and q8_0, reads back with gguf's own reader
equal to the model's weights within the type's rounding (llama.cpp's layout undone: the rotary permutation of
Llama and Mistral's q/k, Gemma's 1 + norm), with its vocabulary, bf16 weights too; Llama 3's rotary scaling is
written as the factors transformers divides its frequencies by, with its theta; another scaling is refused at plan
time; a LoRA run with --export-gguf writes the file from the merged model."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from autotrain_unsloth.outputs.gguf_export import LAYOUTS, GGUFExportError, export, rope_settings  # noqa: E402
from autotrain_unsloth.tiny_models import build_tiny_model  # noqa: E402
from tests.conftest import aitraining  # noqa: E402

TOLERANCE = {"f16": 1e-3, "bf16": 1e-2, "q8_0": 1 / 127}  # relative to the largest value of the tensor or block


def unpermute(weight, heads):
    """llama.cpp's interleaved rotary pairs back to Hugging Face's halves."""
    return weight.reshape(heads, weight.shape[0] // heads // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def read_back(path: str, config: dict) -> dict[str, np.ndarray]:
    """GGUF tensors as float32 arrays in Hugging Face's layout, by GGUF name."""
    reader = gguf.GGUFReader(path)
    _, permuted, plus_one = LAYOUTS[config["model_type"]]
    tensors = {}
    for tensor in reader.tensors:
        data = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        data = data.reshape([int(n) for n in reversed(tensor.shape)])
        if permuted and tensor.name.endswith("attn_q.weight"):
            data = unpermute(data, config["num_attention_heads"])
        if permuted and tensor.name.endswith("attn_k.weight"):
            data = unpermute(data, config["num_key_value_heads"])
        if plus_one and tensor.name.endswith("norm.weight"):
            data = data - 1
        tensors[tensor.name] = data
    return tensors


def assert_equal_to_model(path: str, model_dir: str, kind: str) -> None:
    import json

    from safetensors.torch import load_file

    config = json.load(open(os.path.join(model_dir, "config.json")))
    names = gguf.get_tensor_name_map(next(a for a, n in gguf.MODEL_ARCH_NAMES.items()
                                          if n == LAYOUTS[config["model_type"]][0]), config["num_hidden_layers"])
    written = read_back(path, config)
    theta, rope_type, _ = rope_settings(config)
    assert ("rope_freqs.weight" in written) == (rope_type == "llama3")
    written.pop("rope_freqs.weight", None)
    weights = {name: weight.float().numpy() for shard in sorted(glob.glob(os.path.join(model_dir, "*.safetensors")))
               for name, weight in load_file(shard).items()}
    expected_names = {names.get_name(n, try_suffixes=(".weight", ".bias")) for n in weights
                      if not (config.get("tie_word_embeddings") and n == "lm_head.weight")}
    assert set(written) == expected_names
    for name, weight in weights.items():
        target = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if target not in written:
            continue
        weight = weight.astype(np.float32)
        scale = np.abs(weight).max() or 1.0
        tolerance = TOLERANCE[kind] if weight.ndim > 1 else 1e-6  # norms stay f32
        assert np.abs(written[target] - weight).max() <= tolerance * scale, (name, kind)
    reader = gguf.GGUFReader(path)
    tokens = [bytes(reader.fields["tokenizer.ggml.tokens"].parts[i]).decode()
              for i in reader.fields["tokenizer.ggml.tokens"].data]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokens[:len(tokenizer)] == tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    architecture = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    assert architecture == LAYOUTS[config["model_type"]][0]
    assert reader.fields[f"{architecture}.rope.freq_base"].parts[-1][0] == np.float32(theta)


@pytest.mark.parametrize("kind", ["f16", "q8_0"])
@pytest.mark.parametrize("architecture", list(LAYOUTS))
def test_each_architecture_reads_back_equal(tmp_path, texts, architecture, kind):
    model = build_tiny_model(architecture, str(tmp_path / architecture), texts)
    path = export(model, str(tmp_path / f"{architecture}-{kind}.gguf"), kind)
    assert_equal_to_model(path, model, kind)


def test_bf16_weights_export(models, tmp_path):
    path = export(models["llama-bf16"], str(tmp_path / "bf16.gguf"), "q8_0")
    assert_equal_to_model(path, models["llama-bf16"], "q8_0")


LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 256}  # Llama 3.1's, for a short context


def with_rope(texts, folder: str, rope_parameters: dict) -> str:
    """A tiny Llama whose config.json has these rotary settings."""
    import json

    build_tiny_model("llama", folder, texts, max_positions=4096)
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({**config, "rope_parameters": rope_parameters}, f)
    return folder


def test_llama3_rotary_scaling_is_written_as_the_factors_transformers_applies(texts, tmp_path):
    import torch
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    model = with_rope(texts, str(tmp_path / "llama3"), LLAMA3_ROPE)
    path = export(model, str(tmp_path / "llama3.gguf"), "f16")
    assert_equal_to_model(path, model, "f16")  # theta 500,000 in rope.freq_base, rope_freqs present
    config = AutoConfig.from_pretrained(model)
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config, torch.device("cpu"))
    head_dim = config.hidden_size // config.num_attention_heads
    plain = 1.0 / 500000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    factors = gguf.GGUFReader(path).get_tensor(0)
    assert factors.name == "rope_freqs.weight"
    np.testing.assert_allclose(np.asarray(factors.data), (plain / scaled.double()).numpy(), rtol=1e-5)
    assert not np.allclose(np.asarray(factors.data), 1.0)  # the scaling reaches this head size's frequencies


def test_another_rotary_scaling_is_refused_at_plan_time(texts, tmp_path, in_tmp, data_dir):
    from autotrain_unsloth import LLMTrainingParams
    from autotrain_unsloth.plan import PlanError, make_plan

    model = with_rope(texts, str(tmp_path / "yarn"), {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0})
    params = LLMTrainingParams(model=model, data_path=data_dir, project_name="p", peft=True,
                               export_gguf="q8_0")
    with pytest.raises(PlanError, match="the rotary scaling 'yarn' is not one GGUF export writes"):
        make_plan(params)


def test_an_architecture_it_does_not_know_is_refused(models, tmp_path):
    with pytest.raises(GGUFExportError, match="model_type 'gpt2' is not one"):
        export(models["gpt2"], str(tmp_path / "x.gguf"), "f16")


@pytest.mark.slow
def test_a_lora_run_exports_the_merged_model(in_tmp, models, data_dir):
    result = aitraining("llm", "--train", "--model", models["llama"], "--data-path", data_dir, "--project-name", "g",
                        "--trainer", "sft", "--max-steps", "10", "--batch-size", "4", "--block-size", "64", "--lr", "1e-2",
                        "--peft", "--quantization", "none", "--export-gguf", "q8_0", cwd=in_tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GGUF: g/g-q8_0.gguf from the adapter merged into the 16-bit base" in result.stdout
    assert_equal_to_model(str(in_tmp / "g" / "g-q8_0.gguf"), str(in_tmp / "g" / "merged"), "q8_0")
