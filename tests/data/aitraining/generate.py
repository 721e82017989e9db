"""Writes the training_params.json files in this folder with aitraining 0.0.54's own code (its LLMTrainingParams
and its save()), one per trainer; tests/compat/test_aitraining_files.py runs them. The model, data and project
are placeholders the tests replace. To write them again, with aitraining kept apart from this package (both
install the Python package `autotrain`):

    pip install --no-deps --target /tmp/ait aitraining==0.0.54 loguru
    PYTHONPATH=/tmp/ait python tests/data/aitraining/generate.py
"""

import importlib.metadata
import os
import tempfile

from autotrain.trainers.clm.params import LLMTrainingParams

HERE = os.path.dirname(os.path.abspath(__file__))
PREFERENCE = {"prompt_text_column": "prompt", "text_column": "chosen", "rejected_text_column": "rejected"}
RUNS = {
    "default": {"trainer": "default"},
    # The Unsloth page's quick start: aitraining llm --train --trainer sft --unsloth --peft --lora-r 16
    "sft": {"trainer": "sft", "unsloth": True, "peft": True, "lora_r": 16},
    "dpo": {"trainer": "dpo", "peft": True, **PREFERENCE},
    "orpo": {"trainer": "orpo", "peft": True, "dpo_beta": 0.2, **PREFERENCE},
    "reward": {"trainer": "reward", "peft": True, "text_column": "chosen", "rejected_text_column": "rejected"},
}

if __name__ == "__main__":
    assert importlib.metadata.version("aitraining") == "0.0.54", "run with aitraining 0.0.54's autotrain package"
    for name, settings in RUNS.items():
        params = LLMTrainingParams(model="MODEL", project_name=f"/PROJECTS/{name}", data_path="DATA", **settings)
        with tempfile.TemporaryDirectory() as folder:
            params.save(folder)  # aitraining's own writer
            with open(os.path.join(folder, "training_params.json")) as f:
                text = f.read()
        with open(os.path.join(HERE, f"{name}.json"), "w") as f:
            f.write(text + "\n")
        print(f"{name}.json: {len(params.model_dump())} settings")
