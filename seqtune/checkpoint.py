"""Checkpoints: written whole into a temporary folder, then renamed into place; loaded without pickles."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import SeqtuneError

PREFIX = "checkpoint-"
MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.json"
ARGS_FILE = "training_args.json"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
SCALER_FILE = "scaler.pt"
RNG_FILE = "rng_state.pth"
SHARDED_DIR = "sharded"  # FSDP2: model and optimizer shards written by torch.distributed.checkpoint


def save_model_files(model: torch.nn.Module, folder: Path, tokenizer: Any = None,
                     state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """The model as safetensors plus config (a transformers model folder), and the tokenizer.

    `state_dict` replaces the model's own (a sharded model's gathered weights).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "save_pretrained"):
        with quiet_transformers():
            model.save_pretrained(folder, safe_serialization=True, state_dict=state_dict)
    elif state_dict is not None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(folder / MODEL_FILE))
    else:
        from safetensors.torch import save_model

        save_model(model, str(folder / MODEL_FILE))
    if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(folder)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and load reports for the duration (ours are enough)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def save_checkpoint(output_dir: Path, step: int, *, model: torch.nn.Module, tokenizer: Any,
                    optimizer: dict[str, Any] | None, scheduler: dict[str, Any] | None,
                    scaler: dict[str, Any] | None, trainer_state: dict[str, Any], args: dict[str, Any],
                    rng_states: list[dict[str, Any]] | None = None,
                    full_state: dict[str, torch.Tensor] | None = None, sharded: Path | None = None) -> Path:
    """Write `output_dir/checkpoint-<step>` atomically: a crash leaves the old set or the new one.

    `optimizer`, `scheduler` and `scaler` are state dicts (None: not saved). For a sharded model,
    `full_state` is its gathered weights and `sharded` the folder of shards the ranks wrote.
    """
    final = output_dir / f"{PREFIX}{step}"
    staging = output_dir / f".tmp-{PREFIX}{step}-{os.getpid()}"
    try:
        if staging.exists():
            shutil.rmtree(staging)
        save_model_files(model, staging, tokenizer, full_state)
        if sharded is not None:
            shutil.move(str(sharded), str(staging / SHARDED_DIR))
        for name, part in ((OPTIMIZER_FILE, optimizer), (SCHEDULER_FILE, scheduler), (SCALER_FILE, scaler)):
            if part is not None:
                torch.save(part, staging / name)
        rng = rng_state()
        if rng_states and len(rng_states) > 1:
            rng["ranks"] = rng_states
        torch.save(rng, staging / RNG_FILE)
        (staging / ARGS_FILE).write_text(json.dumps(args, indent=2, default=str))
        (staging / STATE_FILE).write_text(json.dumps(trainer_state, indent=2, default=float))
        _fsync_tree(staging)
        if final.exists():  # a re-save of the same step: move the old one aside first
            old = output_dir / f".old-{PREFIX}{step}-{os.getpid()}"
            final.rename(old)
            staging.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(final)
        _fsync_dir(output_dir)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise SeqtuneError(
            f"could not write checkpoint {final}: {err.strerror or err}; the previous checkpoints "
            "are intact, free some space or fix the permissions, then resume"
        ) from None
    return final


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open folders; the rename is still atomic there
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_staging(output_dir: Path) -> None:
    """Drop half-written checkpoints left by a crash (they were never renamed into place)."""
    if output_dir.is_dir():
        for path in output_dir.glob(f".*-{PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest step first (temporary folders and partial ones are ignored)."""
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        match = re.fullmatch(rf"{PREFIX}(\d+)", path.name)
        if match and is_complete(path):
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def is_complete(folder: Path) -> bool:
    """Weights, trainer state, and the optimizer state (whole, or as FSDP2 shards)."""
    return (folder / MODEL_FILE).is_file() and (folder / STATE_FILE).is_file() and (
        (folder / OPTIMIZER_FILE).is_file() or (folder / SHARDED_DIR / ".metadata").is_file())


def rotate_checkpoints(output_dir: Path, limit: int | None, keep: tuple[str | None, ...] = ()) -> None:
    """Delete the oldest checkpoints beyond `limit`, never one named in `keep` (best, newest)."""
    if limit is None:
        return
    checkpoints = list_checkpoints(output_dir)
    kept = {Path(k).resolve() for k in keep if k}
    if checkpoints:
        kept.add(checkpoints[-1].resolve())
    excess = len(checkpoints) - max(limit, len(kept))
    for path in checkpoints:
        if excess <= 0:
            break
        if path.resolve() not in kept:
            shutil.rmtree(path, ignore_errors=True)
            excess -= 1


def rng_state() -> dict[str, Any]:
    """Every random state a run draws from, in types that `torch.load(weights_only=True)` accepts."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_model_weights(model: torch.nn.Module, folder: Path) -> None:
    """Load `model.safetensors` into `model`; keys missing only because weights are tied are fine."""
    from safetensors.torch import load_file

    path = folder / MODEL_FILE
    if not path.is_file():
        raise SeqtuneError(f"{folder} holds no {MODEL_FILE}; it is not a seqtune checkpoint")
    weights = load_file(str(path))
    own = model.state_dict()
    mismatched = [k for k, v in weights.items() if k in own and own[k].shape != v.shape]
    unexpected = [k for k in weights if k not in own]
    if mismatched or unexpected or len(weights) == 0:
        detail = (f"shape of {mismatched[0]} is {tuple(weights[mismatched[0]].shape)} there, "
                  f"{tuple(own[mismatched[0]].shape)} here" if mismatched
                  else f"it has {unexpected[0]!r} which this model lacks" if unexpected
                  else "it is empty")
        raise SeqtuneError(f"checkpoint {folder} is from another model: {detail}")
    missing = model.load_state_dict(weights, strict=False).missing_keys
    loaded = {own[k].data_ptr() for k in weights}
    untied = [k for k in missing if own[k].data_ptr() not in loaded]
    if untied:
        raise SeqtuneError(f"checkpoint {folder} is from another model: it lacks {untied[0]!r}")


def load_training_state(folder: Path) -> dict[str, Any]:
    """Optimizer, scheduler, scaler and random states, read with weights_only=True (no code runs)."""
    out: dict[str, Any] = {}
    for key, name in (("optimizer", OPTIMIZER_FILE), ("scheduler", SCHEDULER_FILE),
                      ("scaler", SCALER_FILE), ("rng", RNG_FILE)):
        path = folder / name
        out[key] = torch.load(path, weights_only=True, map_location="cpu") if path.is_file() else None
    out["state"] = json.loads((folder / STATE_FILE).read_text())
    args_path = folder / ARGS_FILE
    out["args"] = json.loads(args_path.read_text()) if args_path.is_file() else {}
    return out
