"""The documentation keeps up with the code."""

from __future__ import annotations

import os

from autotrain_unsloth.params import LLMTrainingParams
from tests.conftest import REPO


def test_every_setting_is_documented():
    text = open(os.path.join(REPO, "docs", "params.md")).read()
    missing = [name for name in LLMTrainingParams.model_fields if f"| `{name}` |" not in text]
    assert missing == []


def test_readme_commands_are_what_ci_runs():
    readme = open(os.path.join(REPO, "README.md")).read()
    ci = open(os.path.join(REPO, ".ci", "run")).read()
    test_command = next(line for line in ci.splitlines() if "pytest" in line).replace("pip install -q ", "pip install ")
    assert test_command in readme
    assert "aitraining demo" in readme
