"""Chat templates by name, defined here so that both paths render them without Unsloth: the names AutoTrain,
aitraining and Unsloth's `get_chat_template` users know (with their spellings), each with the tokens it adds
and the token that ends an assistant turn (which becomes the tokenizer's EOS, so that generation stops there).

The templates do not write the BOS token: the tokenizer adds it when the rendered text is tokenized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class ChatTemplate:
    jinja: str
    added_tokens: tuple[str, ...] = ()
    end_of_turn: Optional[str] = None  # None: the tokenizer's own EOS ends a turn


_CHATML = ChatTemplate(
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    ("<|im_start|>", "<|im_end|>"), "<|im_end|>")

TEMPLATES = {
    "chatml": _CHATML,
    "qwen-2.5": _CHATML,  # Qwen 2 and 2.5 are ChatML
    "zephyr": ChatTemplate(
        "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + eos_token + '\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
        ("<|system|>", "<|user|>", "<|assistant|>")),
    "llama-3": ChatTemplate(
        "{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim"
        " + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>"
        "\\n\\n' }}{% endif %}",
        ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), "<|eot_id|>"),
    "gemma": ChatTemplate(  # Gemma knows the roles user and model; a system turn is its own turn here
        "{% for m in messages %}{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else m['role']) + '\\n'"
        " + m['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}",
        ("<start_of_turn>", "<end_of_turn>"), "<end_of_turn>"),
    "mistral": ChatTemplate(
        "{% for m in messages %}{% if m['role'] == 'assistant' %}{{ ' ' + m['content'] + eos_token }}"
        "{% else %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% endif %}{% endfor %}",
        ("[INST]", "[/INST]")),
    "llama-2": ChatTemplate(  # aitraining's and Unsloth's "llama"; a BOS opens every [INST] after the first
        "{% set ns = namespace(system='', turns=0) %}{% for m in messages %}{% if m['role'] == 'system' %}"
        "{% set ns.system = '<<SYS>>\\n' + m['content'] + '\\n<</SYS>>\\n\\n' %}{% elif m['role'] == 'user' %}"
        "{{ (bos_token if ns.turns > 0 else '') + '[INST] ' + ns.system + m['content'] | trim + ' [/INST]' }}"
        "{% set ns.system = '' %}{% set ns.turns = ns.turns + 1 %}{% else %}{{ ' ' + m['content'] | trim + ' ' + eos_token }}"
        "{% endif %}{% endfor %}"),
    "phi-3": ChatTemplate(
        "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
        ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"), "<|end|>"),
    "alpaca": ChatTemplate(
        "{% for m in messages %}{% if m['role'] == 'user' %}{{ '### Instruction:\\n' + m['content'] + '\\n\\n' }}"
        "{% elif m['role'] == 'assistant' %}{{ '### Response:\\n' + m['content'] + eos_token + '\\n\\n' }}"
        "{% else %}{{ m['content'] + '\\n\\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"),
    "vicuna": ChatTemplate(
        "{% for m in messages %}{% if m['role'] == 'user' %}{{ 'USER: ' + m['content'] + ' ' }}"
        "{% elif m['role'] == 'assistant' %}{{ 'ASSISTANT: ' + m['content'] + eos_token }}"
        "{% else %}{{ m['content'] + ' ' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"),
}
ALIASES = {
    "llama3": "llama-3", "llama-3.1": "llama-3", "llama-31": "llama-3", "llama3.1": "llama-3", "llama-3.2": "llama-3",
    "gemma2": "gemma", "gemma-2": "gemma", "gemma3": "gemma", "gemma-3": "gemma",
    "qwen2.5": "qwen-2.5", "qwen-25": "qwen-2.5", "qwen2": "qwen-2.5", "qwen-2": "qwen-2.5",
    "llama": "llama-2", "llama2": "llama-2", "llama-2-chat": "llama-2",
    "phi3": "phi-3", "phi-3.5": "phi-3", "phi35": "phi-3", "mistral-instruct": "mistral",
}
# "tokenizer": the model's own template, from its tokenizer_config.json.
NAMES = ("tokenizer", *TEMPLATES, *ALIASES)


def canonical(name: str) -> str:
    """The template's own name for a spelling users write; ValueError naming every known one."""
    key = name.strip().lower()
    if key == "tokenizer" or key in TEMPLATES:
        return key
    if key in ALIASES:
        return ALIASES[key]
    raise ValueError(f"chat_template {name!r} is not a template this backend knows; use one of: "
                     f"{', '.join(NAMES)}, or none")
