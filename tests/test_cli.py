"""The command line: flags from params, both spellings, --no- forms, errors, dry run, YAML."""

from __future__ import annotations

import os

import pytest

from autotrain_unsloth.cli import build_parser, main, params_from_args
from autotrain_unsloth.settings.config import ConfigError, params_from_config
from tests.conftest import aitraining
from tests.test_params import stock_fields


def parse(*flags):
    return params_from_args(build_parser().parse_args(["llm", *flags]))


def test_help_lists_every_stock_flag_and_ours(capsys):
    with pytest.raises(SystemExit):
        main(["llm", "--help"])
    text = capsys.readouterr().out
    for name in stock_fields():
        assert f"--{name.replace('_', '-')}" in text, name
    for flag in ("--unsloth", "--full-finetuning", "--no-peft", "--use-sharegpt-mapping", "--dry-run", "--train", "--backend"):
        assert flag in text


def test_both_spellings_and_no_forms():
    params = parse("--lora_r", "8", "--lora-alpha", "16", "--peft", "--no-add-eos-token", "--full_finetuning", "--no-peft")
    assert (params.lora_r, params.lora_alpha, params.add_eos_token, params.full_finetuning, params.peft) == (
        8,
        16,
        False,
        True,
        False,
    )


def test_cli_defaults_follow_autotrain():
    params = parse()
    assert params.block_size == 1024  # AutoTrain's CLI default, where Python's is -1
    assert params.quantization == "int4" and params.lr == 3e-5 and params.trainer == "default"
    assert parse("--block-size", "256").block_size == 256


def test_optional_values_accept_none():
    params = parse("--quantization", "none", "--valid-split", "None", "--mixed-precision", "bf16")
    assert params.quantization is None and params.valid_split is None and params.mixed_precision == "bf16"


def test_only_given_flags_count_as_set():
    assert parse("--peft", "--lora-r", "4").model_fields_set == {"peft", "lora_r", "block_size"}


def test_unknown_flag_exits_nonzero_and_suggests():
    result = aitraining("llm", "--train", "--lora_rank", "8")
    assert result.returncode == 2
    assert "unrecognized arguments: --lora_rank (did you mean --lora_r?)" in result.stderr


def test_invalid_value_names_the_field():
    result = aitraining("llm", "--train", "--project-name", "runs/bad name")
    assert result.returncode == 2
    assert "project_name" in result.stderr and "letters, digits, '-', '_' and '.'" in result.stderr


def test_nothing_to_do_without_train():
    result = aitraining("llm", "--model", "x")
    assert result.returncode != 0 and "--train" in result.stderr


def test_dry_run_on_cpu_shows_unsloth_asked_transformers_chosen(in_tmp, models, data_dir):
    result = aitraining(
        "llm",
        "--dry-run",
        "--model",
        models["llama"],
        "--data-path",
        data_dir,
        "--project-name",
        "dry",
        "--trainer",
        "sft",
        "--unsloth",
        "--peft",
        cwd=in_tmp,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "backend" in out and "unsloth" in out and "transformers" in out
    assert "Unsloth was asked for but will not run" in out and "no CUDA GPU was found" in out
    assert "quantization='int4' needs a CUDA GPU" in out
    assert not os.path.exists(in_tmp / "dry")  # a dry run writes nothing and loads no weights


def test_bad_data_path_fails_before_writing(in_tmp, models):
    result = aitraining(
        "llm", "--train", "--model", models["llama"], "--data-path", "./no-such-folder", "--project-name", "bad-data", cwd=in_tmp
    )
    assert result.returncode == 1
    assert "data_path './no-such-folder' does not exist" in result.stderr
    assert not os.path.exists(in_tmp / "bad-data")


def test_bad_model_path_fails_before_writing(in_tmp, data_dir):
    result = aitraining(
        "llm", "--train", "--model", "./no-model", "--data-path", data_dir, "--project-name", "bad-model", cwd=in_tmp
    )
    assert result.returncode == 1 and "model './no-model' is not a folder" in result.stderr
    assert not os.path.exists(in_tmp / "bad-model")


CONFIG = {
    "task": "llm-sft",
    "base_model": "some/model",
    "project_name": "yaml-run",
    "log": "tensorboard",
    "backend": "local",
    "data": {
        "path": "data",
        "train_split": "train",
        "valid_split": None,
        "chat_template": "chatml",
        "column_mapping": {"text_column": "messages"},
    },
    "params": {"peft": True, "quantization": "int4", "unsloth": True, "full_finetuning": False, "lora_r": 8},
    "hub": {"username": "${HF_USERNAME}", "token": "${HF_TOKEN}", "push_to_hub": False},
}


def test_yaml_maps_onto_params(monkeypatch):
    monkeypatch.setenv("HF_USERNAME", "me")
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    params, backend = params_from_config(CONFIG)
    assert backend == "local"
    assert (params.trainer, params.model, params.data_path, params.chat_template, params.text_column) == (
        "sft",
        "some/model",
        "data",
        "chatml",
        "messages",
    )
    assert (params.peft, params.unsloth, params.lora_r, params.log) == (True, True, 8, "tensorboard")
    assert (params.username, params.token) == ("me", "hf_from_env")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.update(epochs=3), "unknown key(s) epochs"),
        (lambda c: c["params"].update(lora_rank=4), "did you mean 'lora_r'"),
        (lambda c: c.update(task="text-classification"), "task 'text-classification' is not an LLM task"),
        (lambda c: c.pop("data"), "missing required key(s): data"),
        (lambda c: c["hub"].update(token="${NOT_SET_ANYWHERE}", push_to_hub=True), "NOT_SET_ANYWHERE is not set"),
    ],
)
def test_yaml_errors_name_the_key(change, message, monkeypatch):
    monkeypatch.setenv("HF_USERNAME", "me")
    monkeypatch.setenv("HF_TOKEN", "t")
    config = {**CONFIG, "data": dict(CONFIG["data"]), "params": dict(CONFIG["params"]), "hub": dict(CONFIG["hub"])}
    change(config)
    with pytest.raises((ConfigError, ValueError), match=message.replace("(", r"\(").replace(")", r"\)")):
        params_from_config(config)


def test_unset_hub_variables_matter_only_when_pushing(monkeypatch):
    """AutoTrain's shipped configs all carry `username: ${HF_USERNAME}` with push_to_hub: false."""
    monkeypatch.delenv("HF_USERNAME", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    params, _ = params_from_config(CONFIG)
    assert (params.username, params.token, params.push_to_hub) == (None, None, False)


def test_every_preset_in_params_folder_loads(monkeypatch):
    """As shipped: no Hub variables set (they are needed only with push_to_hub: true)."""
    from autotrain_unsloth.settings.config import load_config

    monkeypatch.delenv("HF_USERNAME", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    from tests.conftest import REPO

    folder = os.path.join(REPO, "params")
    presets = [name for name in os.listdir(folder) if name.endswith(".yml")]
    assert presets
    for name in presets:
        params, backend = load_config(os.path.join(folder, name))
        assert backend == "local", name


def test_only_our_own_errors_lose_their_traceback():
    """A settings or data problem is one sentence; anything else is a bug or the unforeseen, and keeps its
    traceback (cli.main re-raises it after a one-line summary)."""
    import torch

    from autotrain_unsloth.cli import user_error
    from autotrain_unsloth.data.files import DataError
    from autotrain_unsloth.plan import PlanError
    from autotrain_unsloth.settings.config import ConfigError

    for ours in (ConfigError("x.yml: bad"), DataError("train.csv: line 3"), PlanError("cannot run here")):
        assert user_error(ours)
    for theirs in (
        KeyError("k"),
        AttributeError("a"),
        ValueError("v"),
        RuntimeError("r"),
        OSError("o"),
        torch.OutOfMemoryError("CUDA out of memory"),
    ):
        assert not user_error(theirs)


def test_an_unknown_backend_is_one_sentence(tmp_path):
    result = aitraining("llm", "--train", "--backend", "spaces-a10g", "--model", "m", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "backend 'spaces-a10g' is not available" in result.stderr


def test_config_with_a_command_is_refused_rather_than_its_flags_ignored(tmp_path):
    (tmp_path / "x.yml").write_text("task: llm-sft\nbase_model: m\nproject_name: p\nbackend: local\ndata: {path: d}\n")
    result = aitraining("--config", "x.yml", "llm", "--dry-run", cwd=tmp_path)
    assert result.returncode == 2 and "are not combined with it" in result.stderr
    alone = aitraining("--dry-run", cwd=tmp_path)
    assert alone.returncode == 2 and "needs --config" in alone.stderr
