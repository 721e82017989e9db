"""Conversations to token ids for training: one BOS, the template's own end-of-turn tokens, and, for
response-only loss, label -100 on every token outside the assistant's turns.

Tokenizing the rendered text again with the tokenizer's defaults doubles the BOS of templates that write it
themselves (Llama 3: 128000, 128000), and TRL appends an EOS to text that already ends its turn. The ids are
therefore made here, once: the tokenizer adds its special tokens only when the template did not.

The assistant's turns are found by rendering the conversation turn by turn: the text before an assistant
turn (with the generation prompt, as at inference) and the text up to its end are prefixes of the whole, so
the turn is the characters between them, and its tokens are those whose offsets fall inside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotrain_unsloth.data.files import DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE = -100  # the label PyTorch's cross-entropy skips


def tokenizer_adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether tokenizing text puts the BOS token in front by itself (Llama's tokenizers do, GPT-2's not)."""
    if tokenizer.bos_token_id is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def without_bos(tokenizer: PreTrainedTokenizerBase, text: str) -> str:
    """The rendered text without a leading BOS written by the template, when the tokenizer adds one anyway: the
    form to give trainers that tokenize text themselves (TRL's DPO and reward trainers)."""
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and tokenizer_adds_bos(tokenizer):
        return text[len(bos):]
    return text


def render(tokenizer: PreTrainedTokenizerBase, messages: list[dict], generation_prompt: bool = False) -> str:
    # transformers types the result for every `tokenize`; with tokenize=False it is the rendered text.
    return tokenizer.apply_chat_template(messages, tokenize=False,  # type: ignore[return-value]
                                         add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer: PreTrainedTokenizerBase, messages: list[dict], text: str,
                    where: str) -> list[tuple[int, int]]:
    """Character spans of the assistant's turns in `text` (the whole conversation rendered), each from the end of
    the prompt before it to the end of its own turn (its end-of-turn token included)."""
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        upto = render(tokenizer, messages[:index + 1])
        before = render(tokenizer, messages[:index], generation_prompt=True) if index else ""
        if not upto.startswith(before):
            before = render(tokenizer, messages[:index]) if index else ""
        if not (text.startswith(upto) and upto.startswith(before)):
            raise DataError(f"{where}: the chat template does not render this conversation turn by turn (the "
                            "conversation up to a turn is not the start of the whole), so its assistant turns cannot "
                            "be marked for response_only_loss; name a template that does (chatml, llama-3, zephyr, "
                            "...), or drop --response-only-loss")
        spans.append((len(before), len(upto)))
    return spans


def tokenize_conversation(tokenizer: PreTrainedTokenizerBase, messages: list[dict], response_only: bool,
                          where: str) -> dict:
    """{"input_ids", "labels"} for one conversation."""
    text = render(tokenizer, messages)
    add_special = not (tokenizer.bos_token and text.startswith(tokenizer.bos_token))
    if not response_only:
        ids = tokenizer(text, add_special_tokens=add_special)["input_ids"]
        return {"input_ids": ids, "labels": list(ids)}
    if not getattr(tokenizer, "is_fast", False):
        raise DataError("response_only_loss needs a fast tokenizer (character offsets of each token); this model's "
                        "tokenizer is a slow one. Drop --response-only-loss or use a model with a tokenizer.json")
    spans = assistant_spans(tokenizer, messages, text, where)
    if not spans:
        raise DataError(f"{where}: no assistant turn, so with response_only_loss it has nothing to train on; remove the "
                        "row or add the answer")
    encoded = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    labels = [token if end > start and any(lo <= start < hi for lo, hi in spans) else IGNORE
              for token, (start, end) in zip(encoded["input_ids"], encoded["offset_mapping"])]
    return {"input_ids": encoded["input_ids"], "labels": labels}
