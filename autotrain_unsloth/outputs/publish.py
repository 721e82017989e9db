"""Publishing the result: the project folder to a Hub model repo, after training and saving, by rank 0 only.

The repo is `repo_id`, or `{username}/{project_name}` as in AutoTrain, created private unless hub_private is
false. The token comes from the `token` setting, HF_TOKEN or the login cache; the job gets it through its
environment only, and it is never written: training_params.json holds no token, the model card none, and the
job's output is masked. A failed upload ends the job non-zero with a message that the trained model is safe in
the project folder and how to upload it by hand; nothing local is removed.
"""

from __future__ import annotations

import os

from autotrain_unsloth.distributed import is_main
from autotrain_unsloth.errors import UserError
from autotrain_unsloth.params import LLMTrainingParams

# What stays behind: the prepared data, checkpoints (optimizer states), the job's log, Unsloth's compiled modules.
NOT_UPLOADED = ["autotrain-data/*", "checkpoint-*", "checkpoint-*/*", "autotrain.log", "unsloth_compiled_cache/*",
                "*.tmp", "training_args.bin", ".autotrain.lock", ".autotrain.lock.pid"]


class UploadFailed(UserError, RuntimeError):
    """The upload to the Hub failed; the message says where the trained model is and how to upload it."""


def repo_name(params: LLMTrainingParams) -> str:
    return params.repo_id or f"{params.username}/{params.project_basename}"


def hub_token(params: LLMTrainingParams):
    """The token: the setting, else HF_TOKEN or the login cache (huggingface_hub's own order)."""
    if params.token:
        return params.token
    from huggingface_hub import get_token

    return get_token()


def push_to_hub(params: LLMTrainingParams) -> None:
    if not (params.push_to_hub and is_main()):
        return
    from huggingface_hub import HfApi

    repo, project = repo_name(params), params.project_name
    api = HfApi(token=hub_token(params))
    try:
        api.create_repo(repo, private=params.hub_private, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=project, ignore_patterns=NOT_UPLOADED,
                          commit_message="Trained with autotrain-unsloth")
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UploadFailed(f"the upload to {repo} failed ({type(exc).__name__}: {first_line}); the trained model is "
                           f"safe in {os.path.abspath(project)}/; upload it with `hf upload {repo} {project}`") from exc
    print(f"Uploaded {project}/ to {api.endpoint}/{repo} ({'private' if params.hub_private else 'public'}).", flush=True)
