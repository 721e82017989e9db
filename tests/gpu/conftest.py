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


def build_llama_shape(shape: str, folder: str) -> str:
    """A random-init bf16 Llama of a real size (bench/workload.py's shapes, built on the GPU if any), with the byte-level
    BPE tokenizer of the small test models trained on the bundled texts: GGUF export takes BPE, and the bundled
    question/answer rows give a loss that falls within a few dozen steps. The rows past the tokenizer's 512
    tokens stay in the vocabulary, as in the real model's size."""
    import torch

    from autotrain_unsloth.tiny_models import train_tokenizer
    from bench.workload import build_model

    build_model(shape, folder, tokenizer=train_tokenizer(bundled_texts()))
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the test process goes on to train beside what it built
    return folder
