"""One conversation cell -> a list of {role, content} messages: parsed from JSON or a Python literal, ShareGPT's
from/value turns mapped when asked, each message checked (the roles chat templates know, text content)."""

from __future__ import annotations

import ast
import json
from typing import Any

from autotrain_unsloth.data.files import DataError
from autotrain_unsloth.params import LLMTrainingParams

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "bot": "assistant", "model": "assistant"}
ROLES = ("system", "user", "assistant", "tool")


def is_chat(params: LLMTrainingParams) -> bool:
    """Whether the text columns hold conversations to render with a chat template."""
    return params.chat_template is not None or params.use_sharegpt_mapping


def looks_like_conversation(text: str) -> bool:
    """A cell of JSON text holding a list of messages (a CSV or JSONL string column of conversations)."""
    if not text.lstrip().startswith("["):
        return False
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return False
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and (
        {"role", "content"} <= set(value[0]) or {"from", "value"} <= set(value[0]))


def conversation(value: Any, where: str, params: LLMTrainingParams) -> list[dict]:
    """One cell as a list of {role, content} messages (a JSON or Python-literal string is parsed, ShareGPT's
    from/value turns are mapped when asked)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError) as exc:
                raise DataError(f"{where}: with a chat template the column must hold a list of messages; "
                                f"this is plain text ({value[:60]!r}...)") from exc
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise DataError(f"{where}: expected a list of messages like [{{'role': 'user', 'content': '...'}}]")
    if params.use_sharegpt_mapping:
        try:
            return [{"role": SHAREGPT_ROLES[m["from"]], "content": m["value"]} for m in value]
        except KeyError as exc:
            raise DataError(f"{where}: ShareGPT messages need 'from' ({', '.join(SHAREGPT_ROLES)}) and 'value'; "
                            f"missing or unknown {exc}") from exc
    if value and "from" in value[0] and "role" not in value[0]:
        raise DataError(f"{where}: messages use ShareGPT keys (from/value); pass --use-sharegpt-mapping")
    for turn, message in enumerate(value, 1):
        if "role" not in message or "content" not in message:
            raise DataError(f"{where}: message {turn} needs 'role' and 'content' (it has {', '.join(message) or 'nothing'})")
        if message["role"] not in ROLES:
            raise DataError(f"{where}: message {turn} has role {message['role']!r}; use one of {', '.join(ROLES)}")
        if not isinstance(message["content"], str):
            raise DataError(f"{where}: message {turn}: 'content' must be text, not {type(message['content']).__name__}")
    return [{"role": m["role"], "content": m["content"]} for m in value]
