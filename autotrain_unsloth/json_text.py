"""JSON that a person wrote or a tool saved (settings files, a model's config.json, data files and lines): parsed,
or refused in one sentence that names the file, the line and column as an editor numbers them, and the fix."""

from __future__ import annotations

import json
from typing import Any


def parse_json(text: str | bytes, path: str, fix: str, error: type[Exception], line: int | None = None) -> Any:
    """json.loads(text); `line` is the file's line number when text is one line of it (JSON lines)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"line {line or exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})"
        raise error(f"{path}: {at}; {fix}") from exc
