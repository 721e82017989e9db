"""Whether model code from the Hub may run: AutoTrain's ALLOW_REMOTE_CODE switch, read by the data preparation
(the tokenizer) and by every backend (the model)."""

from __future__ import annotations

import os


def trust_remote_code() -> bool:
    """AutoTrain's ALLOW_REMOTE_CODE switch (default true there). Ours defaults to false: remote code is opt-in."""
    return os.environ.get("ALLOW_REMOTE_CODE", "false").lower() in ("1", "true", "yes")
