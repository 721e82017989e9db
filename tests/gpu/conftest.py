from __future__ import annotations

import os
import shutil

import pytest

from autotrain_unsloth.demo import bundled_texts, write_bundled_data


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    """Projects are folders in the working directory (AutoTrain's rule); GPU_TEST_OUT keeps them for the report."""
    keep = os.environ.get("GPU_TEST_OUT")
    if keep:
        os.makedirs(keep, exist_ok=True)
        return keep
    return str(tmp_path_factory.mktemp("gpu-projects"))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return write_bundled_data(str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """bf16 checkpoints, hidden 64 and head dim 16: the shapes measured to pass Unsloth's kernels."""
    from autotrain_unsloth.tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("models")
    models = {arch: build_tiny_model(arch, str(root / arch), bundled_texts(), dtype="bfloat16", hidden=64, heads=4, kv_heads=2)
              for arch in ("llama", "mistral", "gemma", "qwen2", "phi3")}
    yield models
    shutil.rmtree(root, ignore_errors=True)
