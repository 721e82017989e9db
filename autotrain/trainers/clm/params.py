"""`from autotrain.trainers.clm.params import LLMTrainingParams`: the path AutoTrain and aitraining share, with
aitraining 0.0.54's defaults as aitraining documents it (quantization none, merge_adapter, response-only loss,
the tokenizer's chat template for sft/dpo/orpo/reward, ...). `defaults="autotrain"` gives stock AutoTrain's, as
does `autotrain_unsloth.LLMTrainingParams`."""

from typing import Literal

from pydantic import Field

from autotrain_unsloth.params import LLMTrainingParams as _Params


class LLMTrainingParams(_Params):
    defaults: Literal["autotrain", "aitraining"] = Field("aitraining", description=_Params.model_fields["defaults"].description)


__all__ = ["LLMTrainingParams"]
