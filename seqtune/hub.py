"""push_to_hub: the hub and a token checked before training starts, the final model uploaded at its end."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .args import TrainingArguments
from .errors import SeqtuneError

# Checkpoints, staging folders, locks and tracker stores stay local (transformers leaves out "_*" and checkpoints).
LEFT_OUT = ["_*", "checkpoint-*", "checkpoint-*/**", ".*", ".*/**", "mlruns/**", "wandb/**"]
REACH_TIMEOUT = 5.0  # seconds for the TCP connect that says whether the hub answers at all


def hub_host() -> str:
    """The host uploads go to: HF_ENDPOINT's (a mirror or a private hub), else huggingface.co."""
    return urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"


def reachable(host: str, timeout: float = REACH_TIMEOUT) -> bool:
    """Whether the hub answers at all: a TCP connect, no request, so an offline machine is told in bounded time."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def token_for(args: TrainingArguments) -> str | None:
    """hub_token, else the token huggingface_hub finds (HF_TOKEN, or the one `hf auth login` cached)."""
    if args.hub_token:
        return args.hub_token
    from huggingface_hub import get_token

    return get_token()


def check_hub(args: TrainingArguments) -> None:
    """Before any training: with push_to_hub, a token exists and the hub answers (bounded time), else one sentence."""
    if not args.push_to_hub:
        return
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise SeqtuneError(f"push_to_hub=True, but HF_HUB_OFFLINE is set, so the final model could not be uploaded "
                           f"to {args.hub_model_id}; unset HF_HUB_OFFLINE or pass push_to_hub=False")
    if token_for(args) is None:
        raise SeqtuneError("push_to_hub=True needs a Hugging Face token with write access: pass hub_token=..., "
                           "set HF_TOKEN, or run `hf auth login`")
    if not reachable(hub_host()):
        raise SeqtuneError(f"push_to_hub=True, but the Hugging Face hub ({hub_host()}) is unreachable from this "
                           f"machine, so the final model could not be uploaded to {args.hub_model_id}; "
                           "train offline with push_to_hub=False and upload the output folder later")


def push_final_model(trainer: Any, commit_message: str = "End of training") -> str | None:
    """Save the trained model into output_dir (weights, config, tokenizer, training_args.json) and upload the
    folder to hub_model_id, checkpoints and local bookkeeping left out, as transformers' push_to_hub does.

    Every process takes part in the save (a sharded model is gathered); the main one uploads and gets the
    commit URL, the others None.
    """
    from . import distributed as dist

    check_hub(trainer.args)
    trainer.save_model()  # first: a failed upload leaves the model on disk
    if not dist.is_main():
        return None
    return upload_folder(Path(trainer.args.output_dir), trainer.args, commit_message)


def upload_folder(folder: Path, args: TrainingArguments, commit_message: str) -> str:
    """create_repo (exist_ok) + upload_folder, on hub_revision's branch when given; the commit's URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token_for(args))
    try:
        repo = api.create_repo(args.hub_model_id, private=args.hub_private_repo, exist_ok=True)
        repo_id = getattr(repo, "repo_id", None) or args.hub_model_id
        if args.hub_revision:
            api.create_branch(repo_id, branch=args.hub_revision, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                                   revision=args.hub_revision, ignore_patterns=LEFT_OUT)
    except Exception as err:  # HTTP errors (401, 403, 404, network) from huggingface_hub
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise SeqtuneError(f"push_to_hub: uploading the final model to {args.hub_model_id} failed ({detail}); the "
                           f"model is saved in {args.output_dir}, upload it from there") from None
    return str(getattr(commit, "commit_url", commit))
