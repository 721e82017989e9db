"""Conversations to token ids (data/job/chat_tokens.py): the exact ids each named template yields for a two-turn
conversation on a tokenizer that adds BOS by itself (as Llama's do), one BOS also when the template writes it;
response-only labels; and, after a chatml run, generation that stops at <|im_end|>."""

from __future__ import annotations

import pytest
import torch

from autotrain_unsloth.data.chat_templates import TEMPLATES
from autotrain_unsloth.data.files import DataError
from autotrain_unsloth.data.job.chat_tokens import IGNORE, tokenize_conversation
from autotrain_unsloth.data.job.load import load_tokenizer
from autotrain_unsloth.params import LLMTrainingParams
from tests.conftest import aitraining

TWO_TURNS = [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]
# What each template writes for TWO_TURNS, split at its special tokens (each one id).
LAYOUT = {
    "chatml": ["<|im_start|>", "user\nCapital of France?", "<|im_end|>", "\n", "<|im_start|>", "assistant\nParis.",
               "<|im_end|>", "\n"],
    "zephyr": ["<|user|>", "\nCapital of France?", "</s>", "\n", "<|assistant|>", "\nParis.", "</s>", "\n"],
    "llama-3": ["<|start_header_id|>", "user", "<|end_header_id|>", "\n\nCapital of France?", "<|eot_id|>",
                "<|start_header_id|>", "assistant", "<|end_header_id|>", "\n\nParis.", "<|eot_id|>"],
    "gemma": ["<start_of_turn>", "user\nCapital of France?", "<end_of_turn>", "\n", "<start_of_turn>", "model\nParis.",
              "<end_of_turn>", "\n"],
    "mistral": ["[INST]", " Capital of France? ", "[/INST]", " Paris.", "</s>"],
    "phi-3": ["<|user|>", "\nCapital of France?", "<|end|>", "\n", "<|assistant|>", "\nParis.", "<|end|>", "\n"],
    "alpaca": ["### Instruction:\nCapital of France?\n\n### Response:\nParis.", "</s>", "\n\n"],
    "vicuna": ["USER: Capital of France? ASSISTANT: Paris.", "</s>"],
}


@pytest.fixture(scope="module")
def bos_model(models, tmp_path_factory) -> str:
    """The tiny Llama's tokenizer made to add BOS in front of every text, as Llama's tokenizers do."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models["llama"])
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tokenizer.bos_token_id)])
    folder = str(tmp_path_factory.mktemp("bos-tokenizer"))
    tokenizer.save_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder)("x")["input_ids"][0] == tokenizer.bos_token_id
    return folder


def expected_ids(tokenizer, pieces: list[str]) -> list[int]:
    specials = set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab())
    ids = [tokenizer.bos_token_id]
    for piece in pieces:
        ids += [tokenizer.convert_tokens_to_ids(piece)] if piece in specials else tokenizer(
            piece, add_special_tokens=False)["input_ids"]
    return ids


@pytest.mark.parametrize("name", list(LAYOUT))
def test_each_template_gives_one_bos_and_its_end_of_turn_tokens(bos_model, name):
    tokenizer = load_tokenizer(LLMTrainingParams(model=bos_model, chat_template=name), 256)
    ids = tokenize_conversation(tokenizer, TWO_TURNS, False, "row 1")["input_ids"]
    assert ids == expected_ids(tokenizer, LAYOUT[name]), tokenizer.convert_ids_to_tokens(ids)
    assert ids.count(tokenizer.bos_token_id) == 1
    end_of_turn = TEMPLATES[name].end_of_turn or "</s>"
    assert tokenizer.convert_ids_to_tokens(ids).count(end_of_turn) == (2 if name in ("chatml", "zephyr", "llama-3",
                                                                                     "gemma", "phi-3") else 1)


def test_a_template_that_writes_the_bos_itself_still_gives_one(bos_model):
    """Llama 3's own template starts with {{ bos_token }}; its tokenizer adds one too: 128000, 128000 before."""
    tokenizer = load_tokenizer(LLMTrainingParams(model=bos_model, chat_template="llama-3"), 256)
    tokenizer.chat_template = "{{ bos_token }}" + tokenizer.chat_template
    ids = tokenize_conversation(tokenizer, TWO_TURNS, False, "row 1")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1


def test_response_only_labels_only_the_assistant_turn(bos_model, models):
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(LLMTrainingParams(model=bos_model, chat_template="chatml"), 256)
    conversation = [*TWO_TURNS, {"role": "user", "content": "And Spain?"}, {"role": "assistant", "content": "Madrid."}]
    row = tokenize_conversation(tokenizer, conversation, True, "row 1")
    trained = [token for token, label in zip(row["input_ids"], row["labels"]) if label != IGNORE]
    assert tokenizer.decode(trained) == "Paris.<|im_end|>\nMadrid.<|im_end|>\n"
    assert all(label in (IGNORE, token) for token, label in zip(row["input_ids"], row["labels"]))

    model = AutoModelForCausalLM.from_pretrained(models["llama"])
    model.resize_token_embeddings(len(tokenizer))
    ids = torch.tensor([row["input_ids"]])
    with torch.no_grad():
        response_only = model(input_ids=ids, labels=torch.tensor([row["labels"]])).loss
        whole = model(input_ids=ids, labels=ids).loss
    assert abs(response_only.item() - whole.item()) > 1e-3


def test_a_conversation_without_an_answer_is_named(bos_model):
    tokenizer = load_tokenizer(LLMTrainingParams(model=bos_model, chat_template="chatml"), 256)
    with pytest.raises(DataError, match="row 7: no assistant turn"):
        tokenize_conversation(tokenizer, TWO_TURNS[:1], True, "row 7")


def test_a_template_that_does_not_render_turn_by_turn_is_refused_for_response_only(bos_model):
    tokenizer = load_tokenizer(LLMTrainingParams(model=bos_model, chat_template="chatml"), 256)
    # Writes the number of messages first: the conversation so far is never the start of the whole.
    tokenizer.chat_template = "{{ messages | length }}" + tokenizer.chat_template
    with pytest.raises(DataError, match="does not render this conversation turn by turn"):
        tokenize_conversation(tokenizer, TWO_TURNS, True, "row 1")


@pytest.mark.slow
def test_after_a_chatml_run_generation_stops_at_im_end(in_tmp, models):
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer

    (in_tmp / "chat").mkdir()
    rows = [{"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
            for question, answer in [("Capital of France?", "Paris."), ("Two plus two?", "Four.")] * 8]
    (in_tmp / "chat" / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = aitraining("llm", "--train", "--model", models["llama"], "--data-path", "chat", "--project-name", "chatml",
                        "--trainer", "sft", "--chat-template", "chatml", "--response-only-loss", "--max-steps", "60",
                        "--batch-size", "4", "--gradient-accumulation", "1", "--block-size", "64", "--lr", "3e-3",
                        "--warmup-ratio", "0", "--logging-steps", "5", cwd=in_tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    tokenizer = AutoTokenizer.from_pretrained(in_tmp / "chatml")
    model = AutoModelForCausalLM.from_pretrained(in_tmp / "chatml").eval()
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.eos_token_id == model.config.eos_token_id == end
    assert end in ([model.generation_config.eos_token_id] if isinstance(model.generation_config.eos_token_id, int)
                   else model.generation_config.eos_token_id)
    prompt = tokenizer.apply_chat_template(rows[0]["messages"][:1], tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(prompt, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=20, do_sample=False)[0, inputs["input_ids"].shape[1]:]
    assert output[-1].item() == end and len(output) < 20, tokenizer.decode(output)
    assert tokenizer.decode(output, skip_special_tokens=True).strip() == "Paris."
