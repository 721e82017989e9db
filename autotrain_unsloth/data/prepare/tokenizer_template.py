"""chat_template="tokenizer" on a tokenizer that has none, decided before any weights load (so that --dry-run
says it): aitraining's defaults fall back to ChatML as aitraining does, saying so; AutoTrain's stop with the fix."""

from __future__ import annotations

import json
import os
from typing import Optional

from autotrain_unsloth.data.files import DataError
from autotrain_unsloth.params import LLMTrainingParams

FALLBACK = "chatml"  # aitraining's DEFAULT_CHAT_TEMPLATE is ChatML


def has_chat_template(model: str) -> Optional[bool]:
    """Whether a local model folder's tokenizer has a chat template; None when not a local folder or unreadable."""
    if not os.path.isdir(model):
        return None
    if os.path.isfile(os.path.join(model, "chat_template.jinja")) or os.path.isfile(os.path.join(model, "chat_template.json")):
        return True
    try:
        with open(os.path.join(model, "tokenizer_config.json")) as f:
            return bool(json.load(f).get("chat_template"))
    except (OSError, ValueError, AttributeError):
        return None


def settle_tokenizer_template(params: LLMTrainingParams) -> tuple[LLMTrainingParams, tuple[str, ...]]:
    """(settings, plan notes): the fallback template named in the settings, or a DataError with the fix."""
    uses_tokenizer = params.chat_template == "tokenizer" or (params.chat_template is None and params.use_sharegpt_mapping)
    if not uses_tokenizer or has_chat_template(params.model) is not False:
        return params, ()
    if params.defaults != "aitraining":
        raise DataError(f"chat_template='tokenizer' (or use_sharegpt_mapping without a chat_template), but the "
                        f"tokenizer of {params.model!r} has no chat template; name one (chat_template chatml, zephyr, "
                        "llama-3, ...)")
    return params.model_copy(update={"chat_template": FALLBACK}), (
        f"chat_template: the tokenizer of {params.model!r} has no chat template, so the conversations are rendered "
        f"with {FALLBACK} (aitraining's fallback; --chat-template names another).",)
