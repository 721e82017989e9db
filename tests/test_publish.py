"""push_to_hub against a stand-in for the Hub's HTTP API on localhost (tests/hub_server.py, set with
HF_ENDPOINT): the real Hugging Face Hub is never reached. A LoRA run uploads the model files, tokenizer, card,
training_params.json and plan.json to a private repo; the token is in no uploaded byte and no local file; a Hub
that fails makes the CLI exit non-zero, naming the local folder that holds the trained model."""

from __future__ import annotations

import os

import pytest

from tests.conftest import aitraining
from tests.hub_server import FakeHub

pytestmark = pytest.mark.slow
TOKEN = "hf_publish_test_token_never_written_42"


def push_flags(model, data, project):
    return ["llm", "--train", "--model", model, "--data-path", data, "--project-name", project, "--trainer", "sft",
            "--max-steps", "3", "--batch-size", "2", "--block-size", "64", "--peft", "--quantization", "none",
            "--push-to-hub", "--username", "u", "--token", TOKEN]


@pytest.fixture
def hub():
    server = FakeHub()
    yield server
    server.close()


def test_a_lora_run_is_uploaded_private_and_the_token_is_nowhere(in_tmp, models, data_dir, hub):
    result = aitraining(*push_flags(models["llama"], data_dir, "pushed"), cwd=in_tmp,
                        env={"HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_XET": "1"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"Uploaded pushed/ to {hub.endpoint}/u/pushed (private)" in result.stdout
    repo = hub.repos["u/pushed"]
    assert repo["private"] is True
    uploaded = set(repo["files"])
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "README.md", "training_params.json",
            "plan.json", "run_summary.json"} <= uploaded, uploaded
    assert not [name for name in uploaded if name.startswith(("checkpoint-", "autotrain-data", ".autotrain.lock"))
                or name == "autotrain.log"]
    assert all(TOKEN.encode() not in body for _, _, body in hub.requests)
    assert TOKEN not in result.stdout + result.stderr
    for folder, _, files in os.walk(in_tmp):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                assert TOKEN.encode() not in f.read(), os.path.join(folder, name)


def test_a_failed_upload_exits_nonzero_and_names_the_local_result(in_tmp, models, data_dir):
    down = FakeHub(fail=True)
    try:
        result = aitraining(*push_flags(models["llama"], data_dir, "kept"), cwd=in_tmp,
                            env={"HF_ENDPOINT": down.endpoint, "HF_HUB_DISABLE_XET": "1"})
    finally:
        down.close()
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "the upload to u/kept failed" in output and f"the trained model is safe in {in_tmp / 'kept'}/" in output
    assert (in_tmp / "kept" / "adapter_model.safetensors").exists() and TOKEN not in output


def test_push_without_a_token_anywhere_stops_before_training(in_tmp, models, data_dir):
    flags = push_flags(models["llama"], data_dir, "no-token")
    flags = flags[:flags.index("--token")]
    result = aitraining(*flags, "--dry-run", cwd=in_tmp, env={"HF_TOKEN": "", "HF_HOME": str(in_tmp / "hf-home")})
    assert result.returncode != 0 and "push_to_hub=True: no Hub token" in result.stderr


def test_a_merged_copy_beside_the_adapter_generates_what_base_plus_adapter_does(in_tmp, models, data_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = aitraining("llm", "--train", "--model", models["llama"], "--data-path", data_dir, "--project-name", "m",
                        "--trainer", "sft", "--max-steps", "15", "--batch-size", "4", "--block-size", "64", "--lr", "1e-2",
                        "--peft", "--quantization", "none", "--merged-copy", cwd=in_tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (in_tmp / "m" / "adapter_model.safetensors").exists() and (in_tmp / "m" / "merged" / "config.json").exists()
    tokenizer = AutoTokenizer.from_pretrained(in_tmp / "m")
    inputs = tokenizer("Question: What is the capital of France?\nAnswer:", return_tensors="pt")
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(models["llama"]), in_tmp / "m").eval()
    merged = AutoModelForCausalLM.from_pretrained(in_tmp / "m" / "merged").eval()
    with torch.no_grad():
        expected = adapted.generate(**inputs, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        got = merged.generate(**inputs, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert got.tolist() == expected.tolist()
    card = (in_tmp / "m" / "README.md").read_text()
    assert "`merged/`" in card and "| training loss |" in card and "rows given" in card
