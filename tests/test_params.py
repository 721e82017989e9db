"""LLMTrainingParams: AutoTrain's fields and defaults, unknown keys, cross-field rules, the token."""

from __future__ import annotations

import ast
import json
import os
import re

import pytest
from pydantic import ValidationError

from autotrain_unsloth.params import LLMTrainingParams
from tests.conftest import REPO

FIELDS_TABLE = os.path.join(REPO, "tests", "data", "autotrain_llm_fields.md")


def stock_fields() -> dict[str, object]:
    """Field -> default, read from the table of stock AutoTrain's LLMTrainingParams."""
    fields = {}
    for line in open(FIELDS_TABLE):
        match = re.match(r"\| \w[\w+]* \| `(\w+)` \| [^|]+ \| (.+?) \|", line)
        if match:
            fields[match.group(1)] = ast.literal_eval(match.group(2).strip().strip("`"))
    return fields


def test_every_stock_field_with_its_default():
    stock = stock_fields()
    assert len(stock) == 48
    ours = LLMTrainingParams.model_fields
    for name, default in stock.items():
        assert name in ours, name
        assert ours[name].default == default, (name, ours[name].default, default)


def test_added_fields():
    params = LLMTrainingParams()
    assert params.full_finetuning is False and params.use_sharegpt_mapping is False and params.max_steps == -1


def test_unknown_key_warns_as_autotrain_does_and_a_renamed_one_is_refused(caplog):
    """AutoTrain drops an unknown key with a warning; here the warning names the closest field and stays in the
    plan. An old AutoTrain name would train something else silently: refused with today's name."""
    params = LLMTrainingParams(lora_rank=8)
    assert "unknown setting 'lora_rank' not used; did you mean 'lora_r'?" in caplog.text
    assert "unknown setting 'lora_rank' not used; did you mean 'lora_r'?" in params.setting_warnings()
    assert "lora_rank" not in params.public_dict()
    with pytest.raises(ValidationError) as error:
        LLMTrainingParams(learning_rate=1e-4)
    assert "'learning_rate': AutoTrain renamed it to 'lr'" in str(error.value)


def test_contradictions_are_all_reported_at_once():
    with pytest.raises(ValidationError) as error:
        LLMTrainingParams(peft=True, full_finetuning=True, push_to_hub=True, trainer="dpo")
    message = str(error.value)
    assert "peft=True and full_finetuning=True contradict" in message
    assert "push_to_hub=True needs username (or repo_id)" in message
    assert "trainer='dpo' needs rejected_text_column" in message
    assert "trainer='dpo' needs prompt_text_column for text rows" in message


@pytest.mark.parametrize("name", ["my-run", "Run2", "a" * 50])
def test_project_name_allowed(name):
    assert LLMTrainingParams(project_name=name).project_name == name


@pytest.mark.parametrize("name", ["my_llm_project", "a.b", "v1.2-run_3", "a" * 96])
def test_project_name_takes_what_a_folder_and_a_hub_repo_take(name):
    assert LLMTrainingParams(project_name=name).project_name == name  # aitraining's CLI page uses my_llm_project


@pytest.mark.parametrize("name", ["runs/one", "/tmp/trainings/my_run", "../up/run-2"])
def test_project_name_may_be_a_path_as_in_aitraining(name):
    """aitraining accepts a path (it validates the last part only); the last part names the Hub repo."""
    params = LLMTrainingParams(project_name=name + "/")
    assert params.project_name == name and params.project_basename == name.rsplit("/", 1)[-1]


@pytest.mark.parametrize("name", ["a" * 97, "runs/" + "a" * 97, ".hidden", "runs/.hidden", "a b", "x\\y", "/"])
def test_project_name_follows_autotrain_rule(name):
    with pytest.raises(ValidationError, match="project_name"):
        LLMTrainingParams(project_name=name)


def test_leftover_settings_warn_and_say_why():
    notes = LLMTrainingParams(full_finetuning=True).setting_warnings()
    assert any("quantization='int4' is not used" in note and "full_finetuning=True" in note for note in notes)
    notes = LLMTrainingParams(peft=False, lora_r=64, merge_adapter=True, quantization=None).setting_warnings()
    assert notes == ["lora_r, merge_adapter not used: no LoRA adapter is trained without --peft."]
    assert LLMTrainingParams(peft=True).setting_warnings() == []


@pytest.mark.parametrize("field, spelling", [("quantization", "none"), ("mixed_precision", "no"), ("valid_split", "None")])
def test_none_spellings(field, spelling):
    assert getattr(LLMTrainingParams(**{field: spelling}), field) is None


def test_typed_choices_reject_unknown_values():
    with pytest.raises(ValidationError, match="quantization"):
        LLMTrainingParams(quantization="int3")


def test_token_stays_out_of_files_and_text(tmp_path):
    params = LLMTrainingParams(token="hf_secret_value")
    path = params.save(str(tmp_path))
    assert "hf_secret_value" not in open(path).read()
    assert "hf_secret_value" not in str(params) and "hf_secret_value" not in repr(params)


def test_load_reads_a_stock_file_and_treats_defaults_as_unset(tmp_path):
    stock = {name: field.default for name, field in LLMTrainingParams.model_fields.items() if name in stock_fields()}
    stock.update(model="some/model", peft=True, lr=2e-4)
    path = tmp_path / "training_params.json"
    path.write_text(json.dumps(stock))
    params = LLMTrainingParams.load(str(path))
    assert params.model == "some/model" and params.peft and params.lr == 2e-4
    assert params.model_fields_set == {"model", "peft", "lr"}


def test_every_setting_is_in_exactly_one_help_section():
    from autotrain_unsloth.settings.sections import SECTIONS

    placed = [name for names in SECTIONS.values() for name in names]
    assert sorted(placed) == sorted(LLMTrainingParams.model_fields)


def test_help_is_grouped_and_shows_every_no_switch():
    from autotrain_unsloth.cli import build_parser

    llm = build_parser()._subparsers._group_actions[0].choices["llm"]
    text = llm.format_help()
    for section in ("data settings", "LoRA settings", "automatic settings", "hub settings"):
        assert section + ":" in text
    assert "--no-auto-packed-attention" in text and "--no-packing" in text and "--no-peft" in text


def test_a_settings_error_never_shows_the_token():
    secret = "hf_must_not_appear_in_errors_123"
    with pytest.raises(ValidationError) as caught:
        LLMTrainingParams(token=secret, lora_rank=4, lr=-1)
    assert secret not in str(caught.value) and secret not in repr(caught.value)


def test_a_broken_training_params_file_is_one_sentence(tmp_path):
    import subprocess
    import sys

    for name, text in (("broken.json", '{"model": "m",'), ("empty.json", "")):
        (tmp_path / name).write_text(text)
        result = subprocess.run([sys.executable, "-m", "autotrain_unsloth.trainers.clm", "--training_config", name],
                                cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert f"{name}: line 1: not valid JSON (" in result.stderr


@pytest.mark.parametrize("setting, value, close", [("optimizer", "adamw8bit", "adamw_8bit"),
                                                   ("scheduler", "cosinus", "cosine"), ("optimizer", "nonsense", None)])
def test_an_optimizer_or_scheduler_transformers_does_not_know_is_refused_before_loading(setting, value, close):
    with pytest.raises(ValidationError) as refused:
        LLMTrainingParams(model="m", **{setting: value})
    message = str(refused.value)
    assert f"{setting}={value!r} is not one transformers knows" in message and f"(--{setting})" in message
    assert (f"did you mean {close}" in message) if close else "did you mean" not in message


def test_the_known_names_are_transformers_own():
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    from autotrain_unsloth.settings.trainer_names import OPTIMIZERS, SCHEDULERS

    assert set(OPTIMIZERS) == {name.value for name in OptimizerNames}
    assert set(SCHEDULERS) == {name.value for name in SchedulerType}
