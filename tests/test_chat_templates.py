"""Chat templates by name: every name and spelling renders a conversation on a real tokenizer, with the markers
of its format, and the end-of-turn token becomes the EOS; an unknown name lists the known ones."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from autotrain_unsloth.data.chat_templates import ALIASES, TEMPLATES
from autotrain_unsloth.data.job.load import load_tokenizer
from autotrain_unsloth.params import LLMTrainingParams

CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris."}]
MARKERS = {"chatml": "<|im_start|>assistant\nParis.<|im_end|>", "qwen-2.5": "<|im_start|>user\nCapital of France?<|im_end|>",
           "zephyr": "<|assistant|>\nParis.</s>", "llama-3": "<|start_header_id|>assistant<|end_header_id|>\n\nParis.<|eot_id|>",
           "gemma": "<start_of_turn>model\nParis.<end_of_turn>", "mistral": "[INST] Capital of France? [/INST] Paris.</s>",
           "phi-3": "<|assistant|>\nParis.<|end|>", "alpaca": "### Response:\nParis.</s>", "vicuna": "ASSISTANT: Paris.</s>",
           "llama-2": "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nCapital of France? [/INST] Paris. </s>"}


@pytest.mark.parametrize("name", list(TEMPLATES) + list(ALIASES))
def test_every_name_renders_its_format(models, name):
    params = LLMTrainingParams(model=models["llama"], chat_template=name)
    tokenizer = load_tokenizer(params, 256)
    text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    canonical = params.chat_template
    assert MARKERS[canonical] in text, text
    assert tokenizer.bos_token not in text  # BOS comes from the tokenizer when the text is tokenized, once
    ids = tokenizer(text)["input_ids"]
    adds_bos = tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    assert ids.count(tokenizer.bos_token_id) == int(adds_bos)
    if TEMPLATES[canonical].end_of_turn:
        assert tokenizer.eos_token == TEMPLATES[canonical].end_of_turn and tokenizer.eos_token_id in ids
    for token in TEMPLATES[canonical].added_tokens:  # each marker is one token, not split into pieces
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token


def test_aitraining_and_unsloth_spellings_are_accepted():
    assert LLMTrainingParams(chat_template="llama3").chat_template == "llama-3"
    assert LLMTrainingParams(chat_template="Gemma3").chat_template == "gemma"
    assert LLMTrainingParams(chat_template="none").chat_template is None


def test_aitraining_llama_is_llama_2_chat_with_a_bos_before_each_later_turn(models):
    """aitraining's (and Unsloth's) `llama` template: Llama 2 chat; the tokenizer adds the first BOS, the template
    the ones that open later turns, as Llama 2 was trained."""
    params = LLMTrainingParams(model=models["llama"], chat_template="llama")
    assert params.chat_template == "llama-2"
    tokenizer = load_tokenizer(params, 256)
    text = tokenizer.apply_chat_template(CONVERSATION + [{"role": "user", "content": "And Spain?"},
                                                         {"role": "assistant", "content": "Madrid."}], tokenize=False)
    assert text.endswith(f"Paris. </s>{tokenizer.bos_token}[INST] And Spain? [/INST] Madrid. </s>"), text
    adds_bos = tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    assert tokenizer(text)["input_ids"].count(tokenizer.bos_token_id) == 1 + int(adds_bos)


def test_an_unknown_template_lists_the_known_names():
    with pytest.raises(ValidationError, match="chat_template 'llama-5' is not a template this backend knows; use one of: "
                                              "tokenizer, chatml"):
        LLMTrainingParams(chat_template="llama-5")
