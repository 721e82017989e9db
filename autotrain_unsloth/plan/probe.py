"""Look at the machine and the model without loading weights or importing Unsloth: the facts `decide` needs."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
from typing import Optional

from autotrain_unsloth.attention import torch_varlen_support
from autotrain_unsloth.checkpoints import (
    complete_checkpoints,
    damage,
    differing_settings,
    is_finished,
    latest_checkpoint,
    read_marker,
    resume_settings,
)
from autotrain_unsloth.data.chat_templates import TEMPLATES
from autotrain_unsloth.json_text import parse_json
from autotrain_unsloth.memory import ModelShape
from autotrain_unsloth.outputs.gguf_export import rope_settings
from autotrain_unsloth.outputs.publish import hub_token
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan.types import Environment, PlanError

# A tokenizer_config.json's model_max_length above this means "no limit" (transformers writes 1e30 for that).
UNBOUNDED_TOKENIZER = 10**9


def probe(params: LLMTrainingParams) -> Environment:
    import torch

    cuda = torch.cuda.is_available()
    config = read_model_config(params.model, params.token)
    if os.path.isdir(params.model):
        check_model_files(params.model)
    shape = ModelShape.from_config(config)
    return Environment(
        unsloth_version=_installed_version("unsloth"),
        bitsandbytes_installed=importlib.util.find_spec("bitsandbytes") is not None,
        cuda=cuda,
        bf16=bool(cuda and torch.cuda.is_bf16_supported()),
        gpu_count=gpu_count(torch.cuda.device_count()) if cuda else 0,
        gpu_name=torch.cuda.get_device_name(0) if cuda else None,
        gpu_capability="{}.{}".format(*torch.cuda.get_device_capability(0)) if cuda else None,
        gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 2) if cuda else None,
        host_memory_gib=available_host_memory_gib(),
        disk_free_gib=free_disk_gib(params.project_name),
        offload_variable=offload_variable(),
        torchao_version=_installed_version("torchao"),
        model_type=config["model_type"],
        rope_type=rope_settings(config)[1],
        model_shape=shape.to_dict() if shape else None,
        tokenizer_max_length=read_tokenizer_limit(params.model, params.token),
        template_tokens_missing=missing_template_tokens(params),
        checkpoint=resume_candidate(params),
        project_finished=is_finished(params.project_name),
        hub_token_found=params.push_to_hub and bool(hub_token(params)),
        torch_varlen=torch_varlen_support(),
        flash_attn_installed=importlib.util.find_spec("flash_attn") is not None,
        deepspeed_installed=importlib.util.find_spec("deepspeed") is not None,
        gguf_installed=importlib.util.find_spec("gguf") is not None,
        **gguf_tokenizer(params),
        # not imported here: liger-kernel imports transformers, which must come after Unsloth in a job
        liger_installed=importlib.util.find_spec("liger_kernel") is not None,
    )


def free_disk_gib(folder: str) -> float:
    """Free space where `folder` is or will be created (its nearest existing parent)."""
    import shutil

    path = os.path.abspath(folder)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return round(shutil.disk_usage(path).free / 2**30, 1)


def available_host_memory_gib() -> Optional[float]:
    """MemAvailable from /proc/meminfo (memory the host can give without swapping); None where there is none."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return round(int(fields["MemAvailable"].split()[0]) * 1024 / 2**30, 2)
    except (OSError, KeyError, ValueError, IndexError):
        return None


def offload_variable() -> Optional[bool]:
    """UNSLOTH_OFFLOAD_OPTIMIZER_STATE as the user set it (the plan takes it as optimizer_state_offload)."""
    value = os.environ.get("UNSLOTH_OFFLOAD_OPTIMIZER_STATE", "").strip().lower()
    return None if not value else value in ("1", "true", "yes", "on")


def gpu_count(visible: int) -> int:
    """GPUs to train on: those visible (CUDA_VISIBLE_DEVICES chooses them), or fewer when the process count is
    forced with aitraining's AUTOTRAIN_FORCE_NUM_PROCESSES."""
    forced = os.environ.get("AUTOTRAIN_FORCE_NUM_PROCESSES", "").strip()
    if not forced:
        return visible
    if not forced.isdigit() or not 1 <= int(forced) <= visible:
        raise PlanError(f"AUTOTRAIN_FORCE_NUM_PROCESSES={forced!r}: give a number of processes from 1 to the {visible} "
                        "visible GPUs")
    return int(forced)


def read_model_config(model: str, token: Optional[str] = None) -> dict:
    """The model's config.json, with a model_type: a local folder, or the Hub (cache first when offline)."""
    path: Optional[str]
    if os.path.isdir(model):
        path = os.path.join(model, "config.json")
        if not os.path.isfile(path):
            raise PlanError(f"model {model!r}: the folder has no config.json; point --model at a saved "
                            "transformers model folder or a Hub id")
    elif os.path.exists(model) or model.startswith((".", "/", "~")):
        raise PlanError(f"model {model!r} is not a folder; point --model at a saved transformers model folder or a Hub id")
    else:
        path = _hub_file(model, "config.json", token)
        if path is None:
            raise PlanError(f"model {model!r}: could not read its config.json from the Hub or the cache")
    with open(path) as f:
        config = parse_json(f.read(), path, "the model's config.json is damaged: download or save the model again",
                            PlanError)
    if not isinstance(config, dict) or not config.get("model_type"):
        raise PlanError(f"model {model!r}: config.json has no model_type")
    return config


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")


def check_model_files(folder: str) -> None:
    """A local model folder has tokenizer files, and its safetensors files are whole (each file's header says
    how long its data is): cheap checks, before any weights load."""
    if not any(os.path.isfile(os.path.join(folder, name)) for name in TOKENIZER_FILES):
        raise PlanError(f"model folder {folder!r} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); save the "
                        "tokenizer with the model (tokenizer.save_pretrained(folder))")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            _check_safetensors(os.path.join(folder, name))


def _check_safetensors(path: str) -> None:
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(length)) if 8 + length <= size else None
        end = max((entry["data_offsets"][1] for key, entry in (header or {}).items() if key != "__metadata__"),
                  default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        header, end = None, 0
    if header is None or 8 + length + end > size:
        raise PlanError(f"{path}: truncated or damaged ({size:,} bytes"
                        + (f", its header describes {8 + length + end:,}" if header is not None else "")
                        + "); download or save the model again")


def read_tokenizer_limit(model: str, token: Optional[str] = None) -> Optional[int]:
    """tokenizer_config.json's model_max_length; None when absent, unreadable or unbounded."""
    path = os.path.join(model, "tokenizer_config.json") if os.path.isdir(model) else _hub_file(
        model, "tokenizer_config.json", token)
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            limit = json.load(f).get("model_max_length")
    except (OSError, ValueError, AttributeError):
        return None
    return int(limit) if isinstance(limit, (int, float)) and 0 < limit < UNBOUNDED_TOKENIZER else None


def resume_candidate(params: LLMTrainingParams) -> Optional[dict]:
    """The checkpoint resume_from_checkpoint points at (auto: the newest complete one in the project folder), with
    the settings that differ from the job's, the file that cannot be read if one cannot, and the newest earlier
checkpoint that can: {"path", "step", "differing", "damaged", "earlier"} or {"path", "missing": True}."""
    from autotrain_unsloth.data.prepare.local_data import prepared_settings

    asked = params.resume_from_checkpoint
    if asked is None:
        return None
    if asked == "auto":
        found = latest_checkpoint(params.project_name)
        if found is None:
            return None
    else:
        marker = read_marker(asked)
        if marker is None:
            return {"path": asked, "missing": True}
        found = {"path": asked, "step": marker.get("step"), "settings": marker.get("settings", {})}
    # The job records the settings it ran with: after AutoTrain's data preparation when it was launched by the
    # project (data in <project>/autotrain-data), as given when it was launched directly. Either may match.
    differing = min((differing_settings(found["settings"], resume_settings(candidate))
                     for candidate in (params, prepared_settings(params))), key=len)
    damaged = damage(found["path"]) if os.path.isdir(found["path"]) else None
    earlier = None
    if damaged:
        older = [checkpoint for checkpoint in complete_checkpoints(os.path.dirname(found["path"]) or ".")
                 if checkpoint["step"] < (found["step"] or 0)]
        earlier = next((checkpoint["path"] for checkpoint in reversed(older) if damage(checkpoint["path"]) is None), None)
    return {"path": found["path"], "step": found["step"], "differing": differing, "damaged": damaged, "earlier": earlier}


def missing_template_tokens(params: LLMTrainingParams) -> Optional[tuple[str, ...]]:
    """The tokens the named chat template adds that the model's tokenizer lacks, read from tokenizer.json (its
    vocabulary and added tokens) without loading transformers; None when there is no tokenizer.json to read."""
    named = TEMPLATES.get(params.chat_template or "")
    if not named or not named.added_tokens:
        return ()
    path = os.path.join(params.model, "tokenizer.json") if os.path.isdir(params.model) else _hub_file(
        params.model, "tokenizer.json", params.token)
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
        vocab = set(data.get("model", {}).get("vocab") or ()) | {token["content"] for token in data.get("added_tokens", [])}
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return None
    return tuple(token for token in named.added_tokens if token not in vocab)


def gguf_tokenizer(params: LLMTrainingParams) -> dict:
    """export_gguf: llama.cpp's name for the tokenizer's pre-tokenizer, or why there is none (Environment fields)."""
    from autotrain_unsloth.outputs.gguf_pretokenizer import UnknownPreTokenizer, pre_tokenizer_name

    if params.export_gguf is None:
        return {}
    path = os.path.join(params.model, "tokenizer.json") if os.path.isdir(params.model) else _hub_file(
        params.model, "tokenizer.json", params.token)
    if not path or not os.path.isfile(path):
        return {}  # no byte-level BPE tokenizer to name: the export refuses it with its own reason
    try:
        return {"gguf_pre_tokenizer": pre_tokenizer_name(os.path.dirname(path))}
    except UnknownPreTokenizer as exc:
        return {"gguf_tokenizer_refused": str(exc)}
    except Exception as exc:  # a tokenizer.json the tokenizers library cannot read
        return {"gguf_tokenizer_refused": f"{path} cannot be read by the tokenizers library ({exc})"}


def _hub_file(model: str, filename: str, token: Optional[str]) -> Optional[str]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        return hf_hub_download(model, filename, token=token)
    except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
        return None  # offline, unknown repo, gated, or no such file: the caller says what it could not read


def _installed_version(distribution: str) -> Optional[str]:
    if importlib.util.find_spec(distribution) is None:
        return None
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
