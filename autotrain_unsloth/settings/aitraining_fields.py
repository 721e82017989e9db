"""The settings aitraining 0.0.54 added that this backend implements, and `defaults` (whose defaults apply).
LLMTrainingParams inherits them, so they are fields, flags and YAML keys like every other setting."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field

# Their sections in `--help` and docs/params.md (params.SECTIONS adds them).
SECTIONS = {"defaults": ("defaults",), "data": ("auto_convert_dataset", "conversation_extension", "max_samples"),
            "checkpoints": ("save_strategy",)}


class AitrainingFields(BaseModel):
    defaults: Literal["autotrain", "aitraining"] = Field("autotrain", description="Whose defaults fill the settings "
        "not given: autotrain (AutoTrain 0.8.36) or aitraining (0.0.54: quantization none, merge_adapter, "
        "response-only loss, the tokenizer's chat template, ...); the aitraining command and the autotrain.* import "
        "paths use aitraining's")
    save_strategy: Optional[Literal["epoch", "steps", "no"]] = Field(None, description="aitraining's checkpoint "
        "schedule: epoch, steps (every save_steps) or no; unset: AutoTrain's (with the evaluation, plus save_steps "
        "and save_minutes)")
    auto_convert_dataset: bool = Field(False, description="Detect the data's format (Alpaca, ShareGPT, Q&A, "
        "messages) and convert it to messages rendered with the chat template, as aitraining does")
    conversation_extension: int = Field(1, ge=1, le=10, description="With auto_convert_dataset: join every N "
        "single-turn examples into one conversation of N turns (1: as they are)")
    max_samples: Optional[int] = Field(None, ge=1, description="Train on at most N rows, evenly spaced, and validate "
        "on N/5 (aitraining's, for trying a setup out); none: all")
